// Word-level diff of two answers: the longest common subsequence over words.
// Hangul words are space-separated, so splitting on white space and keeping
// punctuation as its own token works for Korean and English alike.

const TOKEN = /\s+|[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;

export function words(text) {
  return String(text || "").match(TOKEN) || [];
}

/** [{op: "same"|"del"|"add", text}] turning `a` into `b`. */
export function diff(a, b) {
  const x = words(a);
  const y = words(b);
  // Answers are a few hundred words: the O(n*m) table is small and exact.
  const n = x.length;
  const m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  const push = (op, text) => {
    const last = out[out.length - 1];
    if (last && last.op === op) last.text += text;
    else out.push({ op, text });
  };
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { push("same", x[i]); i += 1; j += 1; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) { push("del", x[i]); i += 1; }
    else { push("add", y[j]); j += 1; }
  }
  while (i < n) { push("del", x[i]); i += 1; }
  while (j < m) { push("add", y[j]); j += 1; }
  return out;
}
