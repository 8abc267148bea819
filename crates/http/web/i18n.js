// Korean and English. The first choice follows the browser's languages (what
// it sends as Accept-Language); the switch in the header overrides it.

const STRINGS = {
  en: {
    nav_classes: "Classes", nav_reads: "Who read my sessions", no_classes_taught: "You teach no class.",
    class_not_found: "This class does not exist, or you do not teach it.", instructor_view: "instructor view",
    students: "Students", student: "Student", sessions_col: "Sessions",
    daily_calls: "Model calls per day", calls_ok: "Answered", tokens_by_student: "Tokens per student", turns: "Turns", last_active: "Last active",
    errors: "Errors", cost: "Cost", left: "Left", no_students: "No students yet.", runs: "Runs", calls: "Calls",
    tokens_in: "Tokens in", tokens_out: "Tokens out", daily_tokens: "Tokens per day", 
    tokens_by_model: "Tokens per model", usage_by_model: "Usage per model", usage_by_student: "Usage per student",
    no_usage: "No usage yet.", activity: "Activity", usage: "Usage", budgets: "Budgets", whole_class: "The whole class",
    tokens_per_day: "Tokens per day", tokens_per_week: "Tokens per week", runs_per_hour: "Runs per hour",
    cost_per_month: "Cost per month", no_limit: "no limit", limit_kind: "Limit", used: "Used", limit_value: "Of",
    resets: "Resets", change_limits: "Change limits", save_limits: "Save limits", saved: "Saved.",
    student_sessions: "Students' sessions", back_to_class: "Back to the class", all: "(all)", model: "Model",
    from: "From", to: "To", with_errors: "with errors", without_errors: "without errors", filter: "Filter",
    title_col: "Title", created: "Created", read_only_by: "Read-only: a session of", read_recorded: "Your read is recorded, and the student can see it.",
    reads_hint: "Every time an instructor of your class opened one of your sessions.", session: "Session",
    reader: "Read by", when: "When", no_reads: "Nobody has read your sessions.",
    title: "sluice practice", signin: "Sign in", signout: "Sign out", key: "Your key",
    key_hint: "The key your instructor gave you (sk-sluice-…). It is exchanged for a session cookie.",
    signin_failed: "Sign-in failed: ", nav_run: "Run", nav_library: "Library", history: "History",
    search_titles: "Search titles", no_sessions: "No sessions yet.", rename: "Rename", delete: "Delete",
    move: "Move to project", no_project: "(no project)", confirm_delete: "Delete this session?",
    class: "Class", models: "Models", primary: "primary", style: "Style", temperature: "Temperature",
    top_p: "Top p", max_tokens: "Max tokens", agent: "Agent", project: "Project", knowledge: "Knowledge bases",
    few_shots: "Few-shot examples", none: "(none)", prompt: "Prompt", run: "Run", stop: "Stop",
    stop_all: "Stop all", keys_hint: "Ctrl+Enter runs, Esc stops.", copy: "Copy", copied: "Copied",
    widen: "Widen", narrow: "Narrow", waiting: "Waiting…", streaming: "Streaming…", done: "Done",
    stopped: "Stopped", failed: "Failed", latency: "Latency", tokens: "Tokens", finish: "Finish",
    sources: "Retrieved passages", score: "score", sent: "What this model was sent",
    sent_none: "Not recorded for this answer.", diff: "Compare two answers", diff_run: "Show differences",
    diff_a: "From", diff_b: "To", continue: "Continue the session", turn: "Turn", not_found: "Not found",
    not_found_long: "This session does not exist, or it is not yours.", share: "Link to this session",
    select_model: "Pick at least one model (at most 8).", no_class: "You are not in any class yet.",
    agents: "Agents", projects: "Projects", examples: "Few-shot examples", create: "Create",
    name: "Name", instructions: "Instructions", input: "Input", output: "Output", description: "Description",
    upload: "Upload a file (.txt, .md, .jsonl)", documents: "Documents", try_search: "Try a search",
    search: "Search", results: "Results", passages: "passages", language: "Language", open: "Open",
    err_timeout: "The model took too long (timeout).", err_rate_limited: "The model is rate limited; try again shortly.",
    err_upstream_4xx: "The model refused the request.", err_upstream_5xx: "The model's server failed.",
    err_transport: "The model's server could not be reached.", err_bad_response: "The model's answer could not be read.",
    err_context_exceeded: "The prompt does not fit this model's context.",
    blocked: "The prompt was blocked by the class's filters; no model was called.",
    loading: "Loading…", new_run: "New run", dropped: "dropped by the sliding window",
    messages: "messages", counted: "counted prompt tokens", limit: "limit",
    blind: "Blind comparison", blind_hint: "(answers labelled A, B, …; names shown after your vote)",
    vote_title: "Which answer is best?", vote_is_best: "is best", vote_tie: "Tie", vote_all_bad: "All bad",
    vote_skip: "Skip", vote_keys: "Keys: 1–8 pick an answer, 0 a tie.", vote_thanks: "Vote saved.",
    vote_best: "best:", rate_up: "Good", rate_down: "Bad", rate_comment: "Comment on this answer",
    rate_saved: "Rating saved.", nav_leaderboard: "Leaderboard", lb_all: "(all)", lb_domain: "Domain",
    lb_caption: "Models ranked by blind votes", lb_votes: "votes", lb_votes_col: "Votes",
    lb_skipped: "skipped", lb_model: "Model", lb_rating: "Rating", lb_interval: "95% interval",
    lb_wlt: "Won / lost / tied", lb_empty: "No votes yet: run a blind comparison and vote.",
    lb_matrix: "Win rate of the row's model against the column's", lb_row_beats: "Row vs column",
    lb_comparisons: "comparisons", export: "Export the class:",
    lb_method: "Bradley–Terry scores on an Elo-like scale (1000 + 400·score/ln 10); a tie or \"all bad\" counts half a win for each side; intervals: 95% bootstrap over votes.",
  },
  ko: {
    nav_classes: "수업", nav_reads: "내 세션 열람 기록", no_classes_taught: "담당하는 수업이 없습니다.",
    class_not_found: "수업이 없거나 담당 수업이 아닙니다.", instructor_view: "강사 보기",
    students: "학생", student: "학생", sessions_col: "세션",
    daily_calls: "일별 모델 호출", calls_ok: "응답", tokens_by_student: "학생별 토큰", turns: "턴", last_active: "최근 활동",
    errors: "오류", cost: "비용", left: "남음", no_students: "아직 학생이 없습니다.", runs: "실행", calls: "호출",
    tokens_in: "입력 토큰", tokens_out: "출력 토큰", daily_tokens: "일별 토큰", 
    tokens_by_model: "모델별 토큰", usage_by_model: "모델별 사용량", usage_by_student: "학생별 사용량",
    no_usage: "아직 사용량이 없습니다.", activity: "활동", usage: "사용량", budgets: "예산", whole_class: "수업 전체",
    tokens_per_day: "일일 토큰", tokens_per_week: "주간 토큰", runs_per_hour: "시간당 실행",
    cost_per_month: "월 비용", no_limit: "제한 없음", limit_kind: "한도 종류", used: "사용", limit_value: "한도값",
    resets: "초기화", change_limits: "한도 변경", save_limits: "한도 저장", saved: "저장했습니다.",
    student_sessions: "학생 세션", back_to_class: "수업으로", all: "(전체)", model: "모델",
    from: "시작", to: "끝", with_errors: "오류 있음", without_errors: "오류 없음", filter: "필터",
    title_col: "제목", created: "생성", read_only_by: "읽기 전용: 학생", read_recorded: "열람은 기록되며 학생이 볼 수 있습니다.",
    reads_hint: "수업 강사가 내 세션을 연 기록입니다.", session: "세션",
    reader: "열람자", when: "시각", no_reads: "아직 열람 기록이 없습니다.",
    title: "sluice 실습", signin: "로그인", signout: "로그아웃", key: "내 키",
    key_hint: "강사에게 받은 키(sk-sluice-…)입니다. 세션 쿠키로 교환됩니다.",
    signin_failed: "로그인 실패: ", nav_run: "실행", nav_library: "라이브러리", history: "기록",
    search_titles: "제목 검색", no_sessions: "아직 세션이 없습니다.", rename: "이름 바꾸기", delete: "삭제",
    move: "프로젝트로 이동", no_project: "(프로젝트 없음)", confirm_delete: "이 세션을 삭제할까요?",
    class: "수업", models: "모델", primary: "기본", style: "스타일", temperature: "온도",
    top_p: "Top p", max_tokens: "최대 토큰", agent: "에이전트", project: "프로젝트", knowledge: "지식 베이스",
    few_shots: "퓨샷 예시", none: "(없음)", prompt: "프롬프트", run: "실행", stop: "중지",
    stop_all: "모두 중지", keys_hint: "Ctrl+Enter 실행, Esc 중지.", copy: "복사", copied: "복사됨",
    widen: "넓게", narrow: "좁게", waiting: "대기 중…", streaming: "생성 중…", done: "완료",
    stopped: "중지됨", failed: "실패", latency: "지연 시간", tokens: "토큰", finish: "종료 이유",
    sources: "검색된 문단", score: "점수", sent: "이 모델에 실제로 보낸 내용",
    sent_none: "이 답변에는 기록이 없습니다.", diff: "두 답변 비교", diff_run: "차이 보기",
    diff_a: "기준", diff_b: "비교", continue: "세션 이어가기", turn: "턴", not_found: "찾을 수 없음",
    not_found_long: "이 세션이 없거나 내 세션이 아닙니다.", share: "이 세션 링크",
    select_model: "모델을 하나 이상(최대 8개) 고르세요.", no_class: "아직 속한 수업이 없습니다.",
    agents: "에이전트", projects: "프로젝트", examples: "퓨샷 예시", create: "만들기",
    name: "이름", instructions: "지시문", input: "입력", output: "출력", description: "설명",
    upload: "파일 올리기 (.txt, .md, .jsonl)", documents: "문서", try_search: "검색해 보기",
    search: "검색", results: "결과", passages: "문단", language: "언어", open: "열기",
    err_timeout: "모델 응답 시간이 초과되었습니다.", err_rate_limited: "요청 한도에 걸렸습니다. 잠시 후 다시 시도하세요.",
    err_upstream_4xx: "모델이 요청을 거절했습니다.", err_upstream_5xx: "모델 서버에 오류가 났습니다.",
    err_transport: "모델 서버에 연결할 수 없습니다.", err_bad_response: "모델의 답변을 읽을 수 없습니다.",
    err_context_exceeded: "프롬프트가 이 모델의 컨텍스트에 들어가지 않습니다.",
    blocked: "수업 필터가 프롬프트를 막았습니다. 모델을 호출하지 않았습니다.",
    loading: "불러오는 중…", new_run: "새 실행", dropped: "슬라이딩 윈도우로 제외됨",
    messages: "메시지", counted: "계산된 프롬프트 토큰", limit: "한도",
    blind: "블라인드 비교", blind_hint: "(답변은 A, B, …로 표시되고 투표 후 모델 이름이 공개됩니다)",
    vote_title: "어떤 답변이 가장 좋나요?", vote_is_best: "최고", vote_tie: "비슷함", vote_all_bad: "모두 나쁨",
    vote_skip: "건너뛰기", vote_keys: "키: 1–8 답변 선택, 0 비슷함.", vote_thanks: "투표가 저장되었습니다.",
    vote_best: "최고:", rate_up: "좋음", rate_down: "나쁨", rate_comment: "이 답변에 대한 의견",
    rate_saved: "평가가 저장되었습니다.", nav_leaderboard: "리더보드", lb_all: "(전체)", lb_domain: "도메인",
    lb_caption: "블라인드 투표로 본 모델 순위", lb_votes: "표", lb_votes_col: "투표 수",
    lb_skipped: "건너뜀", lb_model: "모델", lb_rating: "점수", lb_interval: "95% 구간",
    lb_wlt: "승 / 패 / 무", lb_empty: "아직 투표가 없습니다. 블라인드 비교를 실행하고 투표하세요.",
    lb_matrix: "행 모델의 열 모델 대비 승률", lb_row_beats: "행 대 열", lb_comparisons: "비교",
    export: "클래스 내보내기:",
    lb_method: "Bradley–Terry 점수(1000 + 400·점수/ln 10). 비슷함과 \"모두 나쁨\"은 양쪽에 반 승씩, 구간은 투표 부트스트랩 95%.",
  },
};

function initial() {
  const saved = localStorage.getItem("sluice.lang");
  if (saved && STRINGS[saved]) return saved;
  const langs = navigator.languages || [navigator.language || "en"];
  for (const l of langs) {
    const base = String(l).toLowerCase().split("-")[0];
    if (STRINGS[base]) return base;
  }
  return "en";
}

let current = initial();

export function lang() { return current; }

export function setLang(l) {
  if (!STRINGS[l]) return;
  current = l;
  localStorage.setItem("sluice.lang", l);
  document.documentElement.lang = l;
}

export function t(key) {
  return STRINGS[current][key] ?? STRINGS.en[key] ?? key;
}

/** A model error in plain words, with the upstream's message after it. */
export function errorText(error) {
  if (!error) return "";
  const plain = t(`err_${error.kind}`);
  const words = plain === `err_${error.kind}` ? error.kind : plain;
  const status = error.status ? ` (HTTP ${error.status})` : "";
  return `${words}${status}`;
}
