#!/usr/bin/env python3
"""Writes a deterministic JSONL file of chat histories for `sluice trim --jsonl`.

usage: gen.py OUT.jsonl SIZE_MB
Each line: {"id": n, "maxTokens": m, "messages": [...]}, 1 to 120 turns of mixed
Korean/English, so that some lines fit and most are trimmed.
"""
import json
import random
import sys

KO = ["내일 서울의 강수 예보 알려줘", "미세먼지 정보는 어때?", "그럼 부산은?", "주말에 갈 만한 곳 추천해 줘",
      "하이퍼클로바 X로 요약해 줘", "감사합니다!", "오후에 비가 오고 저녁에 갭니다."]
EN = ["What's the weather like tomorrow?", "Summarise this article in three bullet points.",
      "It will rain in the morning and clear up by noon.", "Bring an umbrella.", "Thanks, that helps!"]


def main() -> None:
    out, size_mb = sys.argv[1], float(sys.argv[2])
    rng = random.Random(42)
    limit = int(size_mb * 1024 * 1024)
    written = 0
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        while written < limit:
            turns = rng.randint(1, 120)
            messages = [{"role": "system", "content": "You are a helpful assistant. 친절하게 답하세요."}]
            for t in range(turns):
                q = " ".join(rng.choice(KO + EN) for _ in range(rng.randint(1, 4)))
                a = " ".join(rng.choice(KO + EN) for _ in range(rng.randint(1, 6)))
                messages.append({"role": "user", "content": f"{q} ({n}.{t})"})
                messages.append({"role": "assistant", "content": a})
            line = json.dumps({"id": n, "maxTokens": rng.choice([256, 512, 1024]), "messages": messages},
                              ensure_ascii=False)
            f.write(line + "\n")
            written += len(line.encode()) + 1
            n += 1
    print(f"{out}: {n} lines, {written / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
