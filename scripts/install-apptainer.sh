#!/usr/bin/env bash
# install-apptainer.sh - install a working Apptainer on Debian 12 (bookworm).
#
# Usage: install-apptainer.sh [PREFIX]          (default PREFIX: /opt/apptainer)
#
# Debian 12 ships no apptainer package. This script takes the apptainer .deb
# from Debian unstable (sid), fetched by apt through the Debian mirror and
# keyring this machine is already configured with (nothing under /etc/apt is
# changed and no sid package is installed system-wide), unpacks it into
# PREFIX, and patches the few references to glibc symbols newer than
# bookworm's glibc 2.36 so the binaries run here. Only bookworm packages that
# are missing are installed with apt-get. A self-test builds a busybox SIF and
# runs it.
#
# Re-running is cheap: an existing PREFIX whose apptainer passes the self-test
# is left alone. To force a reinstall, delete PREFIX first.
#
# Environment:
#   APPTAINER_SUITE   Debian suite to take the package from (default: sid)
#
# Must run as root. The installed apptainer is configured for use by root
# (kernel squashfs mounts, no setuid starter).
#
# Output: progress on stderr; on success the last line (stdout) is
#   apptainer: <apptainer --version> at PREFIX/bin/apptainer
# on failure the last line is "install-apptainer: error: ..." and the exit
# status is non-zero.

set -Eeuo pipefail
umask 022
export LC_ALL=C

PROG=install-apptainer
SUITE=${APPTAINER_SUITE:-sid}
MARKER=.install-apptainer          # identifies a PREFIX created by this script
SHIM_NAME=libapptainer-glibc-compat.so

WORK=
TMP_DIRS=()

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	[ -n "$WORK" ] && [ -d "$WORK" ] && : >"$WORK/.failed"
	exit 1
}

on_err() {
	local rc=$1 line=$2 cmd=$3
	if [ -z "$WORK" ] || [ ! -e "$WORK/.failed" ]; then
		printf '%s: error: unexpected failure (exit %s) at line %s: %s\n' \
			"$PROG" "$rc" "$line" "$cmd" >&2
		[ -n "$WORK" ] && [ -d "$WORK" ] && : >"$WORK/.failed"
	fi
	exit "$rc"
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

cleanup() {
	local d
	for d in "${TMP_DIRS[@]}" "$WORK"; do
		[ -n "$d" ] && [ -d "$d" ] && rm -rf --one-file-system -- "$d"
	done
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

usage() {
	sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" >&2
}

# step DESCRIPTION SECONDS COMMAND...: run COMMAND under a time limit with its
# output in a log; on failure show the end of the log and stop.
STEPNO=0
step() {
	local desc=$1 secs=$2 log rc=0
	shift 2
	STEPNO=$((STEPNO + 1))
	log="$WORK/step$STEPNO.log"
	timeout --kill-after=15 "$secs" "$@" >"$log" 2>&1 && return 0 || rc=$?
	tail -n 25 "$log" | sed 's/^/    /' >&2
	[ "$rc" -eq 124 ] && die "$desc timed out after ${secs}s"
	die "$desc failed (exit $rc)"
}

pkg_installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

pkg_available() {
	apt-cache show --no-all-versions "$1" >/dev/null 2>&1
}

# Fetch the package lists only if there are none (fresh images ship without).
ensure_apt_lists() {
	local lists
	eval "$(apt-config shell lists Dir::State::Lists/d)"
	if ! compgen -G "${lists:-/var/lib/apt/lists/}*_Packages*" >/dev/null; then
		step "apt-get update" 600 apt-get -q update
	fi
}

# Install packages from the release's own archive with the machine's normal
# apt configuration. Callers pass only packages that are missing.
apt_install() {
	[ $# -gt 0 ] || return 0
	say "installing missing packages: $*"
	ensure_apt_lists
	local cmd=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
		--no-install-recommends --no-remove -o DPkg::Lock::Timeout=300 "$@")
	if ! timeout --kill-after=15 1200 "${cmd[@]}" >"$WORK/apt-install.log" 2>&1; then
		# Stale package lists are the usual cause (404 on a superseded
		# version): refresh once and retry.
		say "apt-get install failed; refreshing package lists and retrying"
		step "apt-get update" 600 apt-get -q update
		step "apt-get install $*" 1200 "${cmd[@]}"
	fi
}

# ---------------------------------------------------------------------------
# Self-test: build a SIF from a docker-save archive of a static busybox and
# run a command in it, isolated from the host (no network, clean env).

is_static_elf() {
	local out
	[ -f "$1" ] && [ -x "$1" ] || return 1
	[ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || return 1
	out=$(ldd "$1" 2>&1 || true)
	case "$out" in *"not a dynamic executable"* | *"statically linked"*) return 0 ;; esac
	return 1
}

# Sets BUSYBOX to a statically linked busybox, installing busybox-static if
# needed. If the (conflicting) dynamic busybox package is installed, the
# static binary is unpacked from its .deb into the work dir instead.
BUSYBOX=
ensure_busybox() {
	local b
	for b in /bin/busybox /usr/bin/busybox; do
		is_static_elf "$b" && { BUSYBOX=$b; return 0; }
	done
	if pkg_installed busybox; then
		local d="$WORK/busybox-static"
		mkdir -p "$d" && chmod 755 "$d"
		getent passwd _apt >/dev/null && chown _apt "$d"
		(cd "$d" && step "apt-get download busybox-static" 600 apt-get -q download busybox-static)
		b=$(compgen -G "$d/busybox-static_*.deb") || die "apt-get download busybox-static produced no .deb"
		step "unpack busybox-static" 60 dpkg-deb -x "${b%%$'\n'*}" "$d/root"
		b="$d/root/bin/busybox"
	else
		apt_install busybox-static
		b=/bin/busybox
	fi
	is_static_elf "$b" || die "no statically linked busybox available for the self-test"
	BUSYBOX=$b
}

docker_arch() {
	case "$1" in
	amd64 | arm64 | s390x | riscv64 | mips64le) echo "$1" ;;
	ppc64el) echo ppc64le ;;
	i386) echo 386 ;;
	armhf | armel) echo arm ;;
	*) echo "$1" ;;
	esac
}

# Writes DIR/t.tar in `docker save` format with one layer holding busybox.
make_busybox_archive() {
	local d=$1 r=$1/rootfs a lsha csha arch
	arch=$(docker_arch "$(dpkg --print-architecture)")
	mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/dev" "$r/proc" "$r/sys" "$r/root" "$d/img" || return 1
	cp "$BUSYBOX" "$r/bin/busybox" || return 1
	for a in sh echo cat ls env id true; do ln -s busybox "$r/bin/$a" || return 1; done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
	printf 'root:x:0:\n' >"$r/etc/group"
	tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$d/layer.tar" . || return 1
	lsha=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
	mkdir "$d/img/$lsha" && mv "$d/layer.tar" "$d/img/$lsha/layer.tar" || return 1
	printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$arch" "$lsha" >"$d/config.json"
	csha=$(sha256sum "$d/config.json" | cut -d' ' -f1)
	mv "$d/config.json" "$d/img/$csha.json" || return 1
	printf '[{"Config":"%s.json","RepoTags":["selftest/busybox:latest"],"Layers":["%s/layer.tar"]}]' \
		"$csha" "$lsha" >"$d/img/manifest.json"
	tar -C "$d/img" -cf "$d/t.tar" manifest.json "$csha.json" "$lsha" || return 1
}

# self_test APPTAINER: 0 if it builds and runs a container. Written without
# relying on `set -e` (it is called in conditions). On failure sets
# SELFTEST_ERR and SELFTEST_LOG.
SELFTEST_ERR=
SELFTEST_LOG=
selftest_detail() { # ": <last apptainer error line>", if any
	local l
	l=$(grep -E 'FATAL|ERROR' "$SELFTEST_LOG" 2>/dev/null | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g; s/  */ /g') || true
	[ -z "$l" ] || printf ': %s' "$l"
}
self_test() {
	local app=$1 t out
	SELFTEST_ERR='' SELFTEST_LOG=''
	t=$(mktemp -d "${TMPDIR:-/tmp}/apptainer-selftest.XXXXXX") || { SELFTEST_ERR="mktemp failed"; return 1; }
	TMP_DIRS+=("$t")
	SELFTEST_LOG="$t/log"
	mkdir -p "$t/home" "$t/cache" "$t/tmp"
	if ! make_busybox_archive "$t" >"$SELFTEST_LOG" 2>&1; then
		SELFTEST_ERR="could not create the busybox test image"
		return 1
	fi
	local env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		HOME="$t/home" LANG=C APPTAINER_CACHEDIR="$t/cache" APPTAINER_TMPDIR="$t/tmp")
	if ! timeout --kill-after=15 300 "${env[@]}" "$app" build "$t/t.sif" "docker-archive:$t/t.tar" >>"$SELFTEST_LOG" 2>&1; then
		SELFTEST_ERR="'apptainer build t.sif docker-archive:t.tar' failed$(selftest_detail)"
		return 1
	fi
	out=$(timeout --kill-after=15 120 "${env[@]}" "$app" exec --containall --cleanenv --net --network none \
		"$t/t.sif" /bin/sh -c 'echo ok' 2>>"$SELFTEST_LOG") || true
	if [ "$out" != ok ]; then
		SELFTEST_ERR="'apptainer exec ... /bin/sh -c \"echo ok\"' printed '${out//$'\n'/ }' instead of 'ok'$(selftest_detail)"
		return 1
	fi
	rm -rf --one-file-system -- "$t"
	return 0
}

# ---------------------------------------------------------------------------
# Fetching the package.

# Writes one deb822 sources file per candidate mirror, $WORK/apt/cand.N.sources,
# for suite $SUITE, taken from the machine's enabled "deb" entries for the
# release's main archive (suite exactly CODENAME, component main; this excludes
# -security and -updates). Signed-By, Trusted and Check-Valid-Until are kept.
write_candidate_sources() {
	local codename=$1 arch=$2 out=$3 mainlist parts f files=()
	eval "$(apt-config shell mainlist Dir::Etc::SourceList/f parts Dir::Etc::SourceParts/d)"
	[ -f "${mainlist:-}" ] && files+=("$mainlist")
	for f in "${parts:-/etc/apt/sources.list.d/}"*; do
		case "$f" in *.list | *.sources) [ -f "$f" ] && files+=("$f") ;; esac
	done
	[ ${#files[@]} -gt 0 ] || return 0
	# shellcheck disable=SC2016
	awk -v code="$codename" -v suite="$SUITE" -v arch="$arch" -v out="$out" '
	function emit(uri, extra,    f) {
		f = out "/cand." (++n) ".sources"
		printf "Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nArchitectures: %s\nTargets: Packages\n%s", \
			uri, suite, arch, extra > f
		close(f)
		print uri
	}
	function has(list, word) { return (" " list " ") ~ (" " word " ") }
	function reset() { types = ""; uris = ""; suites = ""; comps = ""; enabled = "yes"; extra = ""; cur = "" }
	function flush(    k, m, u) {
		if (has(types, "deb") && tolower(enabled) !~ /^(no|false|0)$/ && has(suites, code) && has(comps, "main")) {
			m = split(uris, u, /[ \t]+/)
			for (k = 1; k <= m; k++) if (u[k] != "") emit(u[k], extra)
		}
		reset()
	}
	BEGIN { reset() }
	FNR == 1 { if (deb822) flush(); deb822 = (FILENAME ~ /\.sources$/) }
	# --- deb822 (.sources) ---
	deb822 && /^#/ { next }
	deb822 && /^[ \t]*$/ { flush(); next }
	deb822 && /^[ \t]/ {
		if (cur == "signed-by") extra = extra $0 "\n"
		else if (cur == "types") types = types " " $0
		else if (cur == "uris") uris = uris " " $0
		else if (cur == "suites") suites = suites " " $0
		else if (cur == "components") comps = comps " " $0
		next
	}
	deb822 {
		i = index($0, ":"); if (!i) next
		key = tolower(substr($0, 1, i - 1)); v = substr($0, i + 1)
		sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v); cur = key
		if (key == "types") types = v
		else if (key == "uris") uris = v
		else if (key == "suites") suites = v
		else if (key == "components") comps = v
		else if (key == "enabled") enabled = v
		else if (key == "signed-by") extra = extra "Signed-By: " v "\n"
		else if (key == "trusted") extra = extra "Trusted: " v "\n"
		else if (key == "check-valid-until") extra = extra "Check-Valid-Until: " v "\n"
		next
	}
	# --- one-line format (.list) ---
	{
		line = $0; sub(/#.*/, "", line); $0 = line
		if ($1 != "deb") next
		opts = ""; i = 2
		if (substr($2, 1, 1) == "[") {
			opts = $2
			while (opts !~ /\]$/ && i < NF) { i++; opts = opts " " $i }
			i++
			gsub(/^\[|\]$/, "", opts)
		}
		uri = $i; s = $(i + 1); c = ""
		for (j = i + 2; j <= NF; j++) c = c " " $j
		if (s != code || !has(c, "main")) next
		e = ""; m = split(opts, o, /[ \t]+/)
		for (k = 1; k <= m; k++) {
			p = index(o[k], "="); if (!p) continue
			key = tolower(substr(o[k], 1, p - 1)); v = substr(o[k], p + 1)
			if (key == "signed-by") { gsub(/,/, " ", v); e = e "Signed-By: " v "\n" }
			else if (key == "trusted") e = e "Trusted: " v "\n"
			else if (key == "check-valid-until") e = e "Check-Valid-Until: " v "\n"
		}
		emit(uri, e)
	}
	END { if (deb822) flush() }
	' "${files[@]}"
}

# Sets DEB (path of the downloaded apptainer .deb) and MIRROR.
DEB=
MIRROR=
fetch_deb() {
	local codename=$1 arch=$2 a="$WORK/apt" c uri opts tried=()
	mkdir -p "$a/archives/partial" "$a/cache" "$a/dl" "$a/prefs.d"
	chmod -R 755 "$a"
	getent passwd _apt >/dev/null && chown _apt "$a/dl"
	# Run apt's own update hooks only for the system lists, not for these.
	printf '#clear APT::Update::Pre-Invoke;\n#clear APT::Update::Post-Invoke;\n#clear APT::Update::Post-Invoke-Success;\n' >"$a/apt.conf"
	write_candidate_sources "$codename" "$arch" "$a" >"$a/candidates"
	[ -s "$a/candidates" ] ||
		die "no enabled 'deb <mirror> $codename main' entry found in the apt sources; cannot tell which Debian mirror to use"
	local n=0
	while c="$a/cand.$((n += 1)).sources" && [ -f "$c" ]; do
		uri=$(sed -n 's/^URIs: //p' "$c")
		tried+=("$uri")
		rm -rf "$a/lists" && mkdir -p "$a/lists/partial" && chmod 755 "$a/lists"
		opts=(-q -c "$a/apt.conf"
			-o Dir::Etc::SourceList="$c" -o Dir::Etc::SourceParts=/nonexistent
			-o Dir::Etc::Preferences=/nonexistent -o Dir::Etc::PreferencesParts="$a/prefs.d"
			-o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" -o Dir::Cache::Archives="$a/archives"
			-o Acquire::Languages=none -o Acquire::Retries=3
			-o Acquire::http::Timeout=60 -o Acquire::https::Timeout=60)
		say "fetching apptainer from Debian $SUITE via $uri"
		if timeout --kill-after=15 300 apt-get "${opts[@]}" update >"$a/update.log" 2>&1 &&
			(cd "$a/dl" && timeout --kill-after=15 600 apt-get "${opts[@]}" download apptainer) >"$a/download.log" 2>&1; then
			DEB=$(compgen -G "$a/dl/apptainer_*.deb" || true)
			DEB=${DEB%%$'\n'*}
			if [ -n "$DEB" ]; then
				MIRROR=$uri
				rm -rf "$a/lists" "$a/cache"
				return 0
			fi
		fi
		cat "$a/update.log" "$a/download.log" 2>/dev/null | grep -E '^(E|W):' | tail -n 5 | sed 's/^/    /' >&2 || true
	done
	die "could not download apptainer from Debian $SUITE via the configured mirror(s): ${tried[*]}"
}

# ---------------------------------------------------------------------------
# ELF inspection (binutils readelf).

# host_versions LIB: version names defined by a host shared library.
host_versions() {
	readelf -V -W "$1" | awk '/Rev:/ { for (i = 1; i < NF; i++) if ($i == "Name:") print $(i + 1) }'
}

# verneeds ELF: "index library version section_offset entry_offset" for each
# version the file needs (.gnu.version_r); offsets are hex.
verneeds() {
	readelf -V -W "$1" | awk '
	/^Version needs section/ { inr = 1; next }
	/^Version (symbols|definition) section/ { inr = 0 }
	!inr { next }
	/ Offset: / { for (i = 1; i < NF; i++) if ($i == "Offset:") base = $(i + 1); next }
	/ File: / { for (i = 1; i < NF; i++) if ($i == "File:") lib = $(i + 1); next }
	/ Name: / {
		name = ""; idx = ""
		for (i = 1; i < NF; i++) { if ($i == "Name:") name = $(i + 1); if ($i == "Version:") idx = $(i + 1) }
		rel = $1; sub(/:$/, "", rel)
		print idx, lib, name, base, rel
	}'
}

# undef_syms ELF: "symbol version_index" for undefined, versioned dynamic symbols.
undef_syms() {
	readelf --dyn-syms -W "$1" | awk '{
		for (i = 1; i <= NF - 2; i++) if ($i == "UND") {
			if ($(i + 2) ~ /^\([0-9]+\)$/) { s = $(i + 1); sub(/@.*/, "", s); v = $(i + 2); gsub(/[()]/, "", v); print s, v }
			break
		}
	}'
}

copy_bytes() { # FILE FROM TO COUNT (decimal offsets)
	dd if="$1" bs=1 skip="$2" count="$4" status=none | dd of="$1" bs=1 seek="$3" count="$4" conv=notrunc status=none
}

# ---------------------------------------------------------------------------
# Compatibility shim for glibc symbols newer than the host glibc.
# shim_c SYMBOL prints a C definition of SYMBOL, or fails if there is none.
# Only functions with a faithful implementation on top of older glibc belong
# here; anything else makes the install fail loudly.

shim_prelude() {
	cat <<'EOF'
/* Definitions of glibc symbols that this system's glibc is too old to
   provide, for binaries built against a newer glibc. Generated by
   install-apptainer.sh. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* glibc 2.38 maps strto* to __isoc23_* under C23: identical to C99 except a
   "0b"/"0B" prefix is accepted when base is 0 or 2. Returns the binary
   digits after such a prefix, or NULL when the C99 function applies. */
static __attribute__((unused)) const char *c23_bin(const char *s, int base, int *neg)
{
	if (base != 0 && base != 2)
		return NULL;
	while (isspace((unsigned char)*s))
		s++;
	*neg = *s == '-';
	if (*s == '+' || *s == '-')
		s++;
	if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B') && (s[2] == '0' || s[2] == '1'))
		return s + 2;
	return NULL;
}

#define C23_STRTOU(name, type, max, plain)                                  \
type name(const char *s, char **end, int base)                              \
{                                                                           \
	int neg, saved = errno;                                             \
	const char *d = c23_bin(s, base, &neg);                             \
	unsigned long long v;                                               \
	if (!d)                                                             \
		return plain(s, end, base);                                 \
	errno = 0;                                                          \
	v = strtoull(d, end, 2);                                            \
	if (errno == ERANGE || v > (max)) {                                 \
		errno = ERANGE;                                             \
		return (max);                                               \
	}                                                                   \
	errno = saved;                                                      \
	return neg ? (type)-(type)v : (type)v;                              \
}

#define C23_STRTOS(name, type, min, max, plain)                             \
type name(const char *s, char **end, int base)                              \
{                                                                           \
	int neg, saved = errno;                                             \
	const char *d = c23_bin(s, base, &neg);                             \
	unsigned long long v, lim;                                          \
	if (!d)                                                             \
		return plain(s, end, base);                                 \
	errno = 0;                                                          \
	v = strtoull(d, end, 2);                                            \
	lim = neg ? (unsigned long long)(max) + 1 : (unsigned long long)(max); \
	if (errno == ERANGE || v > lim) {                                   \
		errno = ERANGE;                                             \
		return neg ? (min) : (max);                                 \
	}                                                                   \
	errno = saved;                                                      \
	return neg ? (v ? -(type)(v - 1) - 1 : 0) : (type)v;                \
}
EOF
}

shim_c() {
	case "$1" in
	__isoc23_strtol) echo 'C23_STRTOS(__isoc23_strtol, long, LONG_MIN, LONG_MAX, strtol)' ;;
	__isoc23_strtoll) echo 'C23_STRTOS(__isoc23_strtoll, long long, LLONG_MIN, LLONG_MAX, strtoll)' ;;
	__isoc23_strtoimax) echo 'C23_STRTOS(__isoc23_strtoimax, intmax_t, INTMAX_MIN, INTMAX_MAX, strtoimax)' ;;
	__isoc23_strtoul) echo 'C23_STRTOU(__isoc23_strtoul, unsigned long, ULONG_MAX, strtoul)' ;;
	__isoc23_strtoull) echo 'C23_STRTOU(__isoc23_strtoull, unsigned long long, ULLONG_MAX, strtoull)' ;;
	__isoc23_strtoumax) echo 'C23_STRTOU(__isoc23_strtoumax, uintmax_t, UINTMAX_MAX, strtoumax)' ;;
	# C23 *scanf add %b and 0b-prefixed %i; the C99 implementations are used.
	__isoc23_vsscanf) echo 'int __isoc23_vsscanf(const char *s, const char *f, va_list ap) { return vsscanf(s, f, ap); }' ;;
	__isoc23_vfscanf) echo 'int __isoc23_vfscanf(FILE *fp, const char *f, va_list ap) { return vfscanf(fp, f, ap); }' ;;
	__isoc23_vscanf) echo 'int __isoc23_vscanf(const char *f, va_list ap) { return vscanf(f, ap); }' ;;
	__isoc23_sscanf) echo 'int __isoc23_sscanf(const char *s, const char *f, ...) { va_list ap; int r; va_start(ap, f); r = vsscanf(s, f, ap); va_end(ap); return r; }' ;;
	__isoc23_fscanf) echo 'int __isoc23_fscanf(FILE *fp, const char *f, ...) { va_list ap; int r; va_start(ap, f); r = vfscanf(fp, f, ap); va_end(ap); return r; }' ;;
	__isoc23_scanf) echo 'int __isoc23_scanf(const char *f, ...) { va_list ap; int r; va_start(ap, f); r = vscanf(f, ap); va_end(ap); return r; }' ;;
	# BSD string functions, new in glibc 2.38.
	strlcpy)
		cat <<'EOF'
size_t strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src), n;
	if (size) {
		n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}
EOF
		;;
	strlcat)
		cat <<'EOF'
size_t strlcat(char *dst, const char *src, size_t size)
{
	size_t dlen = strnlen(dst, size), slen = strlen(src), n;
	if (dlen == size)
		return size + slen;
	n = slen < size - dlen - 1 ? slen : size - dlen - 1;
	memcpy(dst + dlen, src, n);
	dst[dlen + n] = '\0';
	return dlen + slen;
}
EOF
		;;
	*) return 1 ;;
	esac
}

# patch_for_host_glibc STAGE SHIMDIR ELF...: make the ELF files load with the host
# glibc. For each version an ELF needs that the host library does not define:
#  - every symbol bound to it must have a shim; the shim library is added as
#    the first DT_NEEDED (found via $ORIGIN-relative RUNPATH, so PREFIX stays
#    relocatable) and the symbols' version requirement is cleared, so they
#    bind to the shim;
#  - the version-need entry itself is pointed at a version the host library
#    does have (its hash and name are copied from a sibling entry), because
#    ld.so rejects a file that needs any version the library lacks. With no
#    sibling the entry is marked VER_FLG_WEAK, which ld.so tolerates.
patch_for_host_glibc() {
	local stage=$1 shimdir=$2 f lib path idx ver base rel sym glibc
	shift 2
	glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null || echo "glibc (unknown version)")
	local -A hostdefs=() need_shim=() clear=() unsup=()
	local files=()
	for f in "$@"; do
		local -A libpath=()
		while read -r lib path; do libpath[$lib]=$path; done < <(ldd "$f" 2>/dev/null | awk '$2 == "=>" { print $1, $3 }')
		local bad=" "
		while read -r idx lib ver base rel; do
			path=${libpath[$lib]:-}
			if [ -z "$path" ] || [ "$path" = not ]; then
				die "${f#"$stage"/} needs $lib, which is not installed on this system"
			fi
			if [ -z "${hostdefs[$path]:-}" ]; then
				hostdefs[$path]=" $(host_versions "$path" | tr '\n' ' ') "
			fi
			case "${hostdefs[$path]}" in
			*" $ver "*) ;;
			*) bad+="$idx "; unsup[$f:$idx]="$lib $ver" ;;
			esac
		done < <(verneeds "$f")
		unset libpath
		[ "$bad" = " " ] && continue
		files+=("$f")
		clear[$f]=
		while read -r sym idx; do
			case "$bad" in *" $idx "*) ;; *) continue ;; esac
			read -r lib ver <<<"${unsup[$f:$idx]}"
			case "$ver" in GLIBC_*) ;; *)
				die "${f#"$stage"/} needs $sym@$ver from $lib, a newer $lib than this system has" ;;
			esac
			shim_c "$sym" >/dev/null ||
				die "${f#"$stage"/} needs $sym@$ver, which $glibc lacks and which has no compatibility shim here; a newer base system (or a new shim) is needed"
			need_shim[$sym]=$ver
			clear[$f]+=" $sym"
		done < <(undef_syms "$f")
		UNSUP_IDX[$f]=$bad
	done
	[ ${#files[@]} -gt 0 ] || return 0

	SHIMMED=$(printf '%s\n' "${!need_shim[@]}" | sort | tr '\n' ' ')
	SHIMMED=${SHIMMED% }
	say "adapting to $glibc: compatibility shim for ${SHIMMED:-(nothing)}"
	if [ -n "$SHIMMED" ]; then
		mkdir -p "$shimdir"
		{
			shim_prelude
			for sym in $SHIMMED; do shim_c "$sym"; done
		} >"$WORK/compat.c"
		step "compiling the glibc compatibility shim" 120 \
			gcc -O2 -fPIC -shared -Wall -Wl,-soname,"$SHIM_NAME" -o "$shimdir/$SHIM_NAME" "$WORK/compat.c"
		local exported
		exported=" $(readelf --dyn-syms -W "$shimdir/$SHIM_NAME" | awk '$7 ~ /^[0-9]+$/ && $5 == "GLOBAL" { print $8 }' | tr '\n' ' ') "
		for sym in $SHIMMED; do
			case "$exported" in *" $sym "*) ;; *) die "the compatibility shim does not export $sym" ;; esac
		done
	fi

	for f in "${files[@]}"; do
		if [ -n "${clear[$f]}" ]; then
			# One change per patchelf run: patchelf 0.14 can corrupt string
			# references when several are combined (seen with --set-rpath
			# plus --add-needed). Each result is checked.
			local relp oldrp name="${f#"$stage"/}" args=()
			relp=$(realpath -m --relative-to="$(dirname "$f")" "$shimdir")
			if [ "$relp" = . ]; then relp="\$ORIGIN"; else relp="\$ORIGIN/$relp"; fi
			oldrp=$(patchelf --print-rpath "$f")
			relp="$relp${oldrp:+:$oldrp}"
			step "patchelf --set-rpath $name" 300 patchelf --set-rpath "$relp" "$f"
			step "patchelf --add-needed $name" 300 patchelf --add-needed "$SHIM_NAME" "$f"
			for sym in ${clear[$f]}; do args+=(--clear-symbol-version "$sym"); done
			step "patchelf --clear-symbol-version $name" 300 patchelf "${args[@]}" "$f"
			[ "$(patchelf --print-rpath "$f")" = "$relp" ] ||
				die "patchelf did not set the RUNPATH of $name correctly"
			local needed
			needed=$(patchelf --print-needed "$f")
			[ "${needed%%$'\n'*}" = "$SHIM_NAME" ] ||
				die "patchelf did not add $SHIM_NAME to $name"
			while read -r sym idx; do
				case "${UNSUP_IDX[$f]}" in *" $idx "*) die "patchelf left $sym of $name bound to a version this glibc lacks" ;; esac
			done < <(undef_syms "$f")
		fi

		# Re-read: patchelf may have moved sections.
		local -A sib=()
		local pending=()
		while read -r idx lib ver base rel; do
			case "${UNSUP_IDX[$f]}" in
			*" $idx "*) pending+=("$((base + rel)) $lib") ;;
			*) [ -n "${sib[$lib]:-}" ] || sib[$lib]=$((base + rel)) ;;
			esac
		done < <(verneeds "$f")
		local e off s
		for e in "${pending[@]}"; do
			read -r off lib <<<"$e"
			s=${sib[$lib]:-}
			if [ -n "$s" ]; then
				copy_bytes "$f" "$s" "$off" 4                   # vna_hash
				copy_bytes "$f" "$((s + 8))" "$((off + 8))" 4   # vna_name
			else
				printf '\002\000' | dd of="$f" bs=1 seek="$((off + 4))" count=2 conv=notrunc status=none # vna_flags
			fi
		done
		unset sib
	done
}
declare -A UNSUP_IDX=()
SHIMMED=

# ---------------------------------------------------------------------------

# resolve_depends DEB CODENAME: sets DEP_NAMES (the package names that
# satisfy the .deb's Depends here) and MISSING_DEPS (those to install).
# libc6 is skipped: the patching handles the newer glibc it asks for.
DEP_NAMES=()
MISSING_DEPS=()
resolve_depends() {
	local deb=$1 codename=$2 dep alt name vers inst found alts
	DEP_NAMES=() MISSING_DEPS=()
	while IFS= read -r dep; do
		[ -n "$dep" ] || continue
		found=
		IFS='|' read -ra alts <<<"$dep"
		for alt in "${alts[@]}"; do
			read -r name _ <<<"$alt"
			name=${name%%:*}
			if [ "$name" = libc6 ]; then found=libc6; break; fi
			if pkg_installed "$name"; then
				found=$name
				vers=$(sed -n 's/.*(>= *\([^)]*\)).*/\1/p' <<<"$alt")
				inst=$(dpkg-query -W -f='${Version}' "$name")
				if [ -n "$vers" ] && ! dpkg --compare-versions "$inst" ge "$vers"; then
					say "warning: the package wants $name >= $vers; this system has $inst"
				fi
				break
			fi
		done
		[ "$found" = libc6 ] && continue
		if [ -n "$found" ]; then DEP_NAMES+=("$found"); continue; fi
		for alt in "${alts[@]}"; do
			read -r name _ <<<"$alt"
			name=${name%%:*}
			if pkg_available "$name"; then found=$name; break; fi
		done
		if [ -n "$found" ]; then
			DEP_NAMES+=("$found") MISSING_DEPS+=("$found")
		else
			say "warning: dependency '$dep' is not available for $codename; continuing without it"
		fi
	done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//; s/ *$//')
}

CAP_NAMES=(CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID
	CAP_KILL CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE
	CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK
	CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE
	CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE CAP_SYS_RESOURCE
	CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE CAP_AUDIT_WRITE
	CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG
	CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF
	CAP_CHECKPOINT_RESTORE)

set_conf() { # FILE KEY VALUE
	if grep -qE "^[[:space:]]*$2[[:space:]]*=" "$1"; then
		sed -i -E "s|^[[:space:]]*$2[[:space:]]*=.*|$2 = $3|" "$1"
	else
		printf '%s = %s\n' "$2" "$3" >>"$1"
	fi
}

# Adapt apptainer.conf to this machine.
configure() {
	local stage=$1 conf=$1/etc/apptainer/apptainer.conf bnd i present=() missing=()
	[ -f "$conf" ] || die "the package has no etc/apptainer/apptainer.conf"
	# With "root default capabilities = full" the starter asks for every
	# capability and fails if the bounding set lacks one (some VMs and
	# container runtimes drop e.g. CAP_SYS_RESOURCE). In that case grant root
	# exactly the capabilities that exist here, via capability.json.
	bnd=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
	for i in "${!CAP_NAMES[@]}"; do
		if (((0x${bnd:-0} >> i) & 1)); then present+=("${CAP_NAMES[$i]}"); else missing+=("${CAP_NAMES[$i]}"); fi
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "capability bounding set lacks ${missing[*]}; root gets the remaining capabilities"
		set_conf "$conf" "root default capabilities" file
		step "apptainer capability add" 60 "$stage/bin/apptainer" capability add --user root "$(IFS=,; echo "${present[*]}")"
	fi
	# Without systemd as init, cgroup limits must use cgroupfs directly.
	[ -d /run/systemd/system ] || set_conf "$conf" "systemd cgroups" no
	configure_network "$conf"
}

# CNI networks (--net --network bridge): the package's default paths are /etc/apptainer/network
# and /usr/libexec/apptainer/cni; here the configurations are under PREFIX and Debian's
# containernetworking-plugins put the plugins in /usr/lib/cni. (Added for Stevedore.)
configure_network() { # CONF
	set_conf "$1" "cni configuration path" "$PREFIX/etc/apptainer/network"
	set_conf "$1" "cni plugin path" /usr/lib/cni
}

# PREFIX must be absent, empty, or an earlier install by this script.
check_prefix() {
	if [ -e "$PREFIX" ] || [ -L "$PREFIX" ]; then
		[ -d "$PREFIX" ] || die "$PREFIX exists and is not a directory"
		if [ -n "$(ls -A "$PREFIX")" ] && [ ! -f "$PREFIX/$MARKER" ]; then
			die "$PREFIX is not empty and was not created by this script; refusing to overwrite it (choose another PREFIX)"
		fi
	fi
}

# Copy STAGE to PREFIX, replacing an earlier install.
install_tree() {
	local stage=$1
	check_prefix
	if [ -d "$PREFIX" ]; then
		find "$PREFIX" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system -- {} +
	fi
	mkdir -p "$PREFIX"
	# Marker first, so an interrupted copy is recognised and replaced next time.
	cp "$stage/$MARKER" "$PREFIX/$MARKER"
	cp -a "$stage/." "$PREFIX/"
}

# ---------------------------------------------------------------------------

main() {
	case "${1:-}" in
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option: $1 (usage: $0 [PREFIX])" ;;
	esac
	[ $# -le 1 ] || die "usage: $0 [PREFIX]"
	PREFIX=$(realpath -s -m -- "${1:-/opt/apptainer}")
	[ "$PREFIX" != / ] || die "PREFIX must not be /"
	[ "$(id -u)" -eq 0 ] || die "must be run as root (e.g. sudo $0 ${1:-})"

	WORK=$(mktemp -d "${TMPDIR:-/tmp}/install-apptainer.XXXXXX")
	chmod 755 "$WORK" # apt's unprivileged _apt downloader must reach into it

	# Serialise concurrent runs (e.g. parallel CI jobs on one machine).
	local lockdir=/run/lock
	[ -d "$lockdir" ] && [ -w "$lockdir" ] || lockdir=/tmp
	exec 9>"$lockdir/install-apptainer.lock"
	flock -w 1800 9 || die "timed out waiting for another install-apptainer run to finish"

	# Fast path: nothing to do if PREFIX already holds a working apptainer.
	local app="$PREFIX/bin/apptainer" ver
	if [ -x "$app" ] && ver=$(timeout 60 "$app" --version 2>/dev/null); then
		# An install by an earlier version of this script lacks the CNI paths.
		[ -f "$PREFIX/$MARKER" ] && configure_network "$PREFIX/etc/apptainer/apptainer.conf"
		# A restored/copied PREFIX may lack the packages it relies on.
		if [ -f "$PREFIX/$MARKER" ]; then
			local d deps missing=()
			read -ra deps <<<"$(sed -n 's/^depends=//p' "$PREFIX/$MARKER")"
			for d in "${deps[@]}"; do
				pkg_installed "$d" || missing+=("$d")
			done
			apt_install "${missing[@]}"
		fi
		ensure_busybox
		if self_test "$app"; then
			echo "apptainer: $ver at $app"
			return 0
		fi
		say "existing $app failed its self-test ($SELFTEST_ERR); reinstalling"
	fi

	check_prefix
	local id codename arch
	# shellcheck source=/dev/null
	id=$(. /etc/os-release 2>/dev/null && echo "${ID:-}")
	# shellcheck source=/dev/null
	codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	[ "$id" = debian ] || die "this script supports Debian only (this system: ${id:-unknown})"
	[ -n "$codename" ] || die "cannot determine the Debian codename from /etc/os-release"
	for c in apt-get apt-config apt-cache dpkg dpkg-deb dpkg-query ldd timeout flock realpath sha256sum tar; do
		command -v "$c" >/dev/null || die "required command not found: $c"
	done
	arch=$(dpkg --print-architecture)

	fetch_deb "$codename" "$arch"
	local debver
	debver=$(dpkg-deb -f "$DEB" Version)
	[ -n "$debver" ] || die "$DEB is not a valid .deb"

	# Unpack and lay out PREFIX: /usr/* -> PREFIX/*, /etc -> PREFIX/etc,
	# /var -> PREFIX/var. Apptainer relocates itself relative to its binaries.
	local root="$WORK/root" stage="$WORK/stage" starter libexec sp e
	step "unpacking $(basename "$DEB")" 300 dpkg-deb -x "$DEB" "$root"
	[ -x "$root/usr/bin/apptainer" ] || die "unexpected package layout: no usr/bin/apptainer"
	starter=$(find "$root/usr" -path '*/apptainer/bin/starter' -type f -print -quit)
	[ -n "$starter" ] || die "unexpected package layout: no apptainer/bin/starter"
	mkdir -p "$stage"
	for e in "$root"/usr/*; do
		[ "$(basename "$e")" = share ] && rm -rf "$e/lintian"
		mv "$e" "$stage/"
	done
	[ -d "$root/etc" ] && mv "$root/etc" "$stage/etc"
	[ -d "$root/var" ] && mv "$root/var" "$stage/var"
	mkdir -p "$stage/var/lib/apptainer/mnt/session"
	starter=$stage/${starter#"$root"/usr/}
	# The starter derives the install prefix from its own location as if
	# LIBEXECDIR were PREFIX/libexec; with Debian's LIBEXECDIR (lib/<triplet>)
	# it lands one level too deep (PREFIX/lib) and looks for PREFIX/lib/etc,
	# PREFIX/lib/var, PREFIX/lib/lib/<triplet>, ... Point those back.
	libexec=$(dirname "$(dirname "$(dirname "$starter")")")
	sp=$(dirname "$libexec")
	if [ "$sp" != "$stage" ]; then
		for e in bin etc var lib share; do
			[ -e "$stage/$e" ] || continue
			[ -e "$sp/$e" ] || [ -L "$sp/$e" ] || ln -s "$(realpath -m --relative-to="$sp" "$stage/$e")" "$sp/$e"
		done
	fi
	# Many scripts call "singularity"; upstream installs this link too.
	[ -e "$stage/bin/singularity" ] || ln -s apptainer "$stage/bin/singularity"
	rm -rf "$root"

	# ELF files of the package, and whether any needs a newer glibc.
	local elfs=() f magic needs_patch=0
	while IFS= read -r -d '' f; do
		magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
		[ "$magic" = 7f454c46 ] && elfs+=("$f")
	done < <(find "$stage" -type f -print0)
	for f in "${elfs[@]}"; do
		case "$(ldd "$f" 2>&1 || true)" in *"version \`"*"not found"*) needs_patch=1 ;; esac
	done

	# Missing packages from the release's own archive: the package's
	# dependencies (its glibc requirement is what the patching below deals
	# with), the patch tools, and a static busybox for the self-test.
	ensure_apt_lists
	resolve_depends "$DEB" "$codename"
	local pkgs=("${MISSING_DEPS[@]}")
	if [ "$needs_patch" = 1 ]; then
		command -v readelf >/dev/null || pkgs+=(binutils)
		command -v patchelf >/dev/null || pkgs+=(patchelf)
		command -v gcc >/dev/null || pkgs+=(gcc)
		pkg_installed libc6-dev || pkgs+=(libc6-dev)
	fi
	if ! is_static_elf /bin/busybox && ! is_static_elf /usr/bin/busybox && ! pkg_installed busybox; then
		pkgs+=(busybox-static)
	fi
	apt_install "${pkgs[@]}"

	if [ "$needs_patch" = 1 ]; then
		patch_for_host_glibc "$stage" "$(dirname "$(dirname "$starter")")/lib" "${elfs[@]}"
	fi
	local out
	for f in "${elfs[@]}"; do
		out=$(ldd "$f" 2>&1 || true)
		case "$out" in *"not found"*)
			printf '%s\n' "$out" | grep 'not found' | sed 's/^/    /' >&2
			die "${f#"$stage"/} still cannot be loaded on this system" ;;
		esac
	done
	ver=$(timeout 60 "$stage/bin/apptainer" --version 2>&1) ||
		die "the unpacked apptainer does not run: $ver"

	configure "$stage"
	{
		echo "# Created by install-apptainer.sh; the whole directory is replaced on reinstall."
		echo "package=$(basename "$DEB")"
		echo "suite=$SUITE"
		echo "mirror=$MIRROR"
		echo "host=$(getconf GNU_LIBC_VERSION 2>/dev/null || true)"
		echo "shims=$SHIMMED"
		echo "depends=${DEP_NAMES[*]}"
		echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	} >"$stage/$MARKER"

	install_tree "$stage"
	rm -rf "$stage"

	ensure_busybox
	ver=$(timeout 60 "$app" --version 2>&1) || die "$app --version failed after installation: $ver"
	if ! self_test "$app"; then
		[ -f "$SELFTEST_LOG" ] && tail -n 25 "$SELFTEST_LOG" | sed 's/^/    /' >&2
		die "self-test failed: $SELFTEST_ERR"
	fi
	echo "apptainer: $ver at $app"
}

main "$@"
