//! The built-in safety rule sets, in Korean and English.
//!
//! These are phrases of *intent* (asking how to do harm, seeking illegal goods,
//! attacking a group, pushing a side of a divisive issue), not topics: a news
//! question about a murder case, a recipe for 폭탄계란찜, a question about a
//! painkiller's side effects or about suicide prevention must not hit. Keywords
//! match on the compact text (spaces removed), patterns on the spaced text; both
//! are normalised first. A router file extends a set with `[safety.<Category>]`.
//!
//! English patterns use ASCII word boundaries, `(?-u:\b)`: a Unicode `\b` stops
//! the lazy DFA on non-ASCII text and costs about 25 µs per Korean query.

use crate::config::Category;

/// Built-in keywords and patterns of one category.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinRules {
    /// The category.
    pub category: Category,
    /// Literal phrases (matched with spacing removed).
    pub keywords: &'static [&'static str],
    /// Linear-time regex patterns.
    pub patterns: &'static [&'static str],
}

/// The built-in rule set of `category`.
pub fn builtin_rules(category: Category) -> BuiltinRules {
    match category {
        Category::Unethical => UNETHICAL,
        Category::Contentious => CONTENTIOUS,
    }
}

const UNETHICAL: BuiltinRules = BuiltinRules {
    category: Category::Unethical,
    keywords: &[
        // Violence and weapons.
        "사람 죽이는 법",
        "사람 죽이는 방법",
        "사람을 죽이는",
        "살인 방법",
        "살인 청부",
        "청부 살인",
        "죽여버리고 싶",
        "폭탄 만드는",
        "폭탄 제조",
        "사제 폭탄",
        "총기 제작",
        "테러 계획",
        "kill someone",
        "kill a person",
        "murder someone",
        "hire a hitman",
        "make a bomb",
        "build a bomb",
        "pipe bomb",
        "untraceable gun",
        "plan a terrorist attack",
        // Crime.
        "마약 구매",
        "마약 구입",
        "마약 파는 곳",
        "필로폰",
        "대마초 구입",
        "대마초 파는",
        "보이스피싱 하는 법",
        "대포통장",
        "위조지폐",
        "돈세탁",
        "해킹하는 법",
        "계정 해킹",
        "남의 카톡",
        "buy cocaine",
        "buy meth",
        "buy drugs online",
        "launder money",
        "money laundering scheme",
        "counterfeit money",
        "hack into",
        "steal a car",
        "shoplift",
        // Self-harm.
        "자살 방법",
        "자살하는 법",
        "극단적 선택 방법",
        "손목 긋",
        "자해하는 법",
        "kill myself",
        "suicide method",
        "how to commit suicide",
        "self harm methods",
        // Hate.
        "인종 청소",
        "열등한 민족",
        "다 죽여야",
        "ethnic cleansing",
        "inferior race",
        "subhuman",
        "gas them all",
        // Sexual exploitation.
        "아동 성착취",
        "아동 음란물",
        "몰카 찍는",
        "불법 촬영",
        "리벤지 포르노",
        "child porn",
        "csam",
        "revenge porn",
        "upskirt",
    ],
    patterns: &[
        r"(?-u:\b)how (?:do i|to|can i) (?:kill|poison|stab|shoot) (?:someone|somebody|a person|people|my (?:wife|husband|boss|neighbou?r|teacher|father|mother))(?-u:\b)",
        r"(?-u:\b)(?:make|build|assemble) (?:a |an )?(?:bomb|explosive|ied)(?-u:\b)",
        r"(?-u:\b)(?:buy|order|get) (?:some )?(?:heroin|fentanyl|meth|cocaine|lsd)(?-u:\b)",
        r"(?:마약|필로폰|대마초?|코카인)\s*(?:어디서|구매|구입|살\s*수)",
    ],
};

const CONTENTIOUS: BuiltinRules = BuiltinRules {
    category: Category::Contentious,
    keywords: &[
        // Politics: taking sides, slurs for the other side.
        "어느 당을 찍",
        "누구 찍어야",
        "지지 정당",
        "정권 심판",
        "대통령 탄핵",
        "빨갱이",
        "토착왜구",
        "수꼴",
        "좌파 척결",
        "좌빨",
        "극우 세력",
        "who should i vote for",
        "which party should i vote",
        "liberals are",
        "conservatives are",
        // Religion: which is true, which is wrong.
        "어느 종교가 옳",
        "종교가 맞",
        "이단 종교",
        "개독",
        "which religion is true",
        "religion is evil",
        "god doesn't exist",
        // Divisive social issues.
        "낙태",
        "동성혼",
        "동성 결혼",
        "사형제",
        "사형 제도",
        "난민 수용",
        "페미니즘",
        "젠더 갈등",
        "abortion",
        "same-sex marriage",
        "gay marriage",
        "death penalty",
        "gun control",
        "immigration ban",
        "pro-life",
        "pro-choice",
    ],
    patterns: &[
        r"(?:진보|보수|여당|야당|민주당|국민의힘)\s*(?:vs|대)\s*(?:진보|보수|여당|야당|민주당|국민의힘)",
        r"(?:진보|보수|여당|야당)(?:는|은|이|가)?\s*(?:다\s*)?(?:나쁘|쓰레기|망해야)",
        r"(?-u:\b)(?:democrats|republicans|liberals|conservatives) are (?:evil|stupid|idiots|the enemy)(?-u:\b)",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_compile_and_are_not_empty() {
        for c in Category::ALL {
            let rules = builtin_rules(c);
            assert!(!rules.keywords.is_empty());
            for p in rules.patterns {
                crate::patterns::check(p).unwrap();
            }
            for k in rules.keywords {
                assert!(!crate::normalize::compact(k).is_empty());
            }
        }
    }
}
