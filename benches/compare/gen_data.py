#!/usr/bin/env python3
"""Deterministic test data for the comparison harness (issue 5).

Writes into OUT_DIR (default target/compare):

- conv100.jsonl    20 conversations: a system message, then 100 turns
                   (user + assistant), mixed Korean/English.
- conv10000.jsonl  2 conversations of 10,000 turns.
- grow.json        turns appended one at a time in the grow-by-one-turn runs.
- corpus.txt       text corpus for counting, one text per line.
- manifest.json    what the files are, and the maxTokens values to trim with.

Text is drawn from small Korean and English word lists, with ~15% of words made
up at random (Hangul syllables, letters) so that it is not all repeats, plus
numbers, URLs, emoji and punctuation. Only the standard library; seeded, so
every run writes the same bytes.
"""

import json
import os
import random
import sys

SEED = 20_251_123

KO_WORDS = (
    "안녕하세요 감사합니다 오늘 내일 어제 회의 일정 확인 부탁드립니다 문서 요약 번역 "
    "데이터 모델 토큰 계산 결과 서버 배포 오류 로그 사용자 질문 답변 예산 보고서 "
    "프로젝트 팀 고객 주문 배송 결제 환불 문의 상품 가격 할인 이벤트 서울 부산 "
    "날씨 맑음 비 눈 점심 저녁 커피 회사 집 학교 공부 시험 준비 완료 진행 중 "
    "검토 수정 요청 승인 거절 다시 한번 설명해 주세요 그리고 하지만 그래서 또한 "
    "정말 아주 조금 많이 빠르게 천천히 정확하게 간단히 자세히 먼저 다음 마지막"
).split()

EN_WORDS = (
    "the a an and or but so because please thanks hello meeting schedule report "
    "summary translate model token count result server deploy error log user "
    "question answer budget project team customer order shipping payment refund "
    "price discount event weather lunch dinner coffee office home study exam ready "
    "done review update request approve reject again explain quickly carefully "
    "exactly briefly first next last context window limit latency throughput cache "
    "API JSON HTTP request response streaming benchmark Rust Python tokenizer"
).split()

PUNCT = [".", ",", "?", "!", ":", ";", " -", "...", ")", "("]
TECH = [
    "`max_tokens=4096`",
    "HCX-003",
    "https://example.com/docs?id=42",
    "user@example.com",
    "v1.2.3",
    "2025-11-23",
    "{\"k\": 1}",
    "3.14",
    "100%",
    "#42",
    "$19.99",
    "😀",
    "👍",
    "→",
]


def rare_word(rng: random.Random, korean: bool) -> str:
    if korean:  # random Hangul syllables
        return "".join(chr(0xAC00 + rng.randrange(11_172)) for _ in range(rng.randint(1, 4)))
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
    return word.capitalize() if rng.random() < 0.3 else word


def sentence(rng: random.Random, words: int) -> str:
    out = []
    korean = rng.random() < 0.6
    for _ in range(words):
        r = rng.random()
        if r < 0.08:  # switch language mid-sentence
            korean = not korean
        if r < 0.04:
            out.append(rng.choice(TECH))
        elif r < 0.07:
            out.append(str(rng.randrange(100_000)))
        elif r < 0.22:  # a word outside the word lists: names, typos, rare words
            out.append(rare_word(rng, korean))
        else:
            out.append(rng.choice(KO_WORDS if korean else EN_WORDS))
        if rng.random() < 0.06:
            out[-1] += rng.choice(PUNCT)
    text = " ".join(out)
    return text + rng.choice([".", "?", "!", "", "요.", "니다."])


def paragraph(rng: random.Random, lo: int, hi: int) -> str:
    parts = []
    remaining = rng.randint(lo, hi)
    while remaining > 0:
        n = min(remaining, rng.randint(4, 18))
        parts.append(sentence(rng, n))
        remaining -= n
    sep = "\n" if rng.random() < 0.3 else " "
    text = sep.join(parts)
    if rng.random() < 0.05:
        text = "  " + text + "\n\n"  # leading/trailing whitespace matters to BPE
    return text


def turn(rng: random.Random) -> list:
    return [
        {"role": "user", "content": paragraph(rng, 3, 40)},
        {"role": "assistant", "content": paragraph(rng, 10, 120)},
    ]


def conversation(rng: random.Random, turns: int) -> dict:
    system = "당신은 친절한 어시스턴트입니다. You are a helpful assistant; answer in the user's language. " + sentence(
        rng, rng.randint(5, 30)
    )
    messages = [{"role": "system", "content": system}]
    for _ in range(turns):
        messages.extend(turn(rng))
    return {"messages": messages}


def write_jsonl(path: str, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "target/compare"
    os.makedirs(out, exist_ok=True)
    rng = random.Random(SEED)
    write_jsonl(os.path.join(out, "conv100.jsonl"), (conversation(rng, 100) for _ in range(20)))
    write_jsonl(os.path.join(out, "conv10000.jsonl"), (conversation(rng, 10_000) for _ in range(2)))
    grow = [{"messages": turn(rng)} for _ in range(2_000)]
    with open(os.path.join(out, "grow.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(grow, f, ensure_ascii=False)
    with open(os.path.join(out, "corpus.txt"), "w", encoding="utf-8", newline="\n") as f:
        for _ in range(2_000):
            f.write(paragraph(rng, 5, 150).replace("\n", " "))
            f.write("\n")
    manifest = {
        "seed": SEED,
        "profile": "HCX-003",
        "encoding": "cl100k_base",
        "context_limit": 4096,
        "max_tokens": [256, 1024, 2048],
        "grow_max_tokens": 1024,
        "grow_turns": "grow.json",
        "grow_checkpoint": 100,
        "corpus": "corpus.txt",
        "sets": [
            {"name": "100-turn", "file": "conv100.jsonl", "turns": 100},
            {"name": "10,000-turn", "file": "conv10000.jsonl", "turns": 10_000},
        ],
    }
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
