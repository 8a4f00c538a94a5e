# Sourced by run.sh (after the venv and the Kafka jars are in place, under the setup lock).
# Installs the clients that are not Python packages, each rebuilt when its sources change:
#   kcat                  Debian's package (apt-get; run.sh runs as root in CI)
#   fusermount3           Debian's fuse3 (the same way), for lossyfs
#   nft                   Debian's nftables (the same way), for harness/netns.py
#   java-classes/<hash>/          compat-tests/java/*.java compiled against the Kafka 4.1.0 jars
#   go/<hash>/fjord-compat-go     compat-tests/go (franz-go v1.22.3 + kadm), `go build`
#   franz-go/<hash>/kgo.test      franz-go v1.22.3's own pkg/kgo tests (`go test -c`), for
#                                 test_franz_go_suite.py
# and exports where they are for the tests: KCAT, FJORD_COMPAT_JAVA_CLASSES, FJORD_COMPAT_GO_BIN,
# FJORD_KGO_TEST, FJORD_KGO_DIR. Anything that cannot be installed stops the run.
# Needs: CACHE, LIBS, HERE, log() from run.sh.

export GOFLAGS=-mod=mod
srchash() { { cat "$@"; go version; } | sha256sum | cut -d' ' -f1; }  # files + the Go toolchain

# apt_install COMMAND PACKAGE: install Debian's PACKAGE unless COMMAND is on the PATH.
apt_install() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2 (apt-get install -y $2)"
  if [[ "$(id -u)" != 0 ]]; then
    echo "run.sh: $1 is missing and this is not root; install it (apt-get install $2)" >&2
    exit 5
  fi
  if ! apt-cache show "$2" >/dev/null 2>&1; then
    timeout 600 apt-get update -q >"$CACHE/apt.log" 2>&1 || { cat "$CACHE/apt.log" >&2; echo "run.sh: apt-get update failed" >&2; exit 5; }
  fi
  if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q "$2" >>"$CACHE/apt.log" 2>&1; then
    cat "$CACHE/apt.log" >&2
    echo "run.sh: apt-get install $2 failed (log above, also in $CACHE/apt.log)" >&2
    exit 5
  fi
}

# --- kcat, and fusermount3 (fuse3) for the lossyfs mounts of test_power_cut.py
apt_install kcat kcat
KCAT="$(command -v kcat)"
export KCAT
apt_install fusermount3 fuse3
# --- nft (nftables) for the network partitions of test_network_partition.py (harness/netns.py)
apt_install nft nftables

# --- Java programs against kafka-clients 4.1.0 (one folder per source hash: runs of different
# checkouts sharing the cache never clobber each other's build)
JAVA_HASH="$(srchash "$HERE"/java/*.java "$LIBS/.complete")"
JAVA_CLASSES="$CACHE/java-classes/$JAVA_HASH"
if [[ ! -f "$JAVA_CLASSES/.complete" ]]; then
  log "compiling compat-tests/java into $JAVA_CLASSES"
  rm -rf "$JAVA_CLASSES"
  mkdir -p "$JAVA_CLASSES"
  javac -nowarn -encoding UTF-8 -cp "$LIBS/*" -d "$JAVA_CLASSES" "$HERE"/java/*.java
  touch "$JAVA_CLASSES/.complete"
fi
export FJORD_COMPAT_JAVA_CLASSES="$JAVA_CLASSES"

# --- Go program against franz-go v1.22.3
GO_HASH="$(srchash "$HERE"/go/go.mod "$HERE"/go/go.sum "$HERE"/go/*.go)"
GO_OUT="$CACHE/go/$GO_HASH"
if [[ ! -x "$GO_OUT/fjord-compat-go" ]]; then
  log "building compat-tests/go into $GO_OUT"
  mkdir -p "$GO_OUT"
  (cd "$HERE/go" && timeout 900 go build -o "$GO_OUT/fjord-compat-go.tmp" . && mv "$GO_OUT/fjord-compat-go.tmp" "$GO_OUT/fjord-compat-go")
fi
export FJORD_COMPAT_GO_BIN="$GO_OUT/fjord-compat-go"

# --- franz-go's own integration tests (pkg/kgo), compiled once per go.mod/go.sum
KGO_HASH="$(srchash "$HERE"/franz-go/go.mod "$HERE"/franz-go/go.sum)"
KGO_OUT="$CACHE/franz-go/$KGO_HASH"
if [[ ! -x "$KGO_OUT/kgo.test" ]]; then
  log "compiling franz-go's pkg/kgo tests into $KGO_OUT (a minute or two, once)"
  mkdir -p "$KGO_OUT"
  (cd "$HERE/franz-go" && timeout 900 go test -c -o "$KGO_OUT/kgo.test.tmp" github.com/twmb/franz-go/pkg/kgo && mv "$KGO_OUT/kgo.test.tmp" "$KGO_OUT/kgo.test")
fi
export FJORD_KGO_TEST="$KGO_OUT/kgo.test"
# Some of its tests read files of the package (config.go), so they run from its source folder.
FJORD_KGO_DIR="$(cd "$HERE/franz-go" && go list -f '{{.Dir}}' github.com/twmb/franz-go/pkg/kgo)"
export FJORD_KGO_DIR
