#!/usr/bin/env bash
# Restart hearth: stop.sh, then start.sh (same as start.sh --restart).
set -euo pipefail

case "${1:-}" in
    -h|--help)
        cat <<USAGE
Usage: $(basename "$0") [START OPTIONS] [SERVER FLAGS...]

Stop the running hearth gracefully (stop.sh) and start it again (start.sh).
Same as: start.sh --restart ...  The binary is rebuilt first when src/ changed,
so a failed build leaves the old server running.  Without server flags the
flags of the previous start are used again.  See start.sh --help.
USAGE
        exit 0
        ;;
esac

exec "$(dirname "${BASH_SOURCE[0]}")/start.sh" --restart "$@"
