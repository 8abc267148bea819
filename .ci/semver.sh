#!/usr/bin/env bash
# Semver check of the crates people link (sluice-core, sluice-router) against
# their last release, with cargo-semver-checks (crates.io). A change the
# version does not allow fails CI: bump the workspace version and list the
# break under **Breaking** in CHANGELOG.md with its one-line migration, then
# move BASELINE to the release commit.
# Usage: .ci/semver.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The release commit of 0.2.0 (a tag may not travel with the branch, so the
# commit is named here and in CHANGELOG.md).
BASELINE="${SLUICE_SEMVER_BASELINE:-cc7747aeddaa46fcb12aecbd27f33e2b154b5aed}"
VERSION=0.51.0

if ! cargo semver-checks --version 2>/dev/null | grep -q "$VERSION"; then
    # Built from source: no prebuilt binary is fetched from anywhere.
    cargo install --locked --quiet cargo-semver-checks --version "$VERSION"
fi
if ! git cat-file -e "$BASELINE^{commit}" 2>/dev/null; then
    echo "semver: baseline commit $BASELINE is not in this clone (shallow?); fetching the full history" >&2
    git fetch --quiet --unshallow
fi
cargo semver-checks check-release --baseline-rev "$BASELINE" -p sluice-core -p sluice-router
