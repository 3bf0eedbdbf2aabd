#!/bin/sh
# SPDX-License-Identifier: MIT
#
# mutants.sh - does the host suite notice when the library is wrong?
#
# Applies each mutation below, one at a time, to a copy of userlib/ in a
# temporary directory, builds the host tests there and runs them fastest
# first, stopping at the first that fails.  A mutant is "ok" when the
# suite fails (it caught the mutation), "not ok" when the whole suite
# passes, or when the mutation no longer applies to the source or does not
# build (then the list below needs updating).  KTAP, one line per mutant,
# and a Totals line; exits non-zero unless every mutant was caught.
#
#   ./mutants.sh            all mutants
#   ./mutants.sh NAME...    only these
#
# Slow: up to a full host suite per mutant.  Not part of make check.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kheap-mutants.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
jobs=${JOBS:-2}
limit=${MUTANT_TIMEOUT:-600}	# seconds per test program; a hang is a catch

# Test programs, quickest first, so a caught mutant costs little.
tests="test_trim test_resize test_sync test_export test_misuse test_errno
	test_atfork test_tlsf test_dma test_heap test_threads test_threads_tsan"

# m NAME FILE OLD NEW: replace the first OLD in FILE by NEW, literally
# (\n and \t stand for newline and tab).
mutants() {
	m calloc_tail_clear arena.c \
		'if (n > pre && n > usable - 8)' \
		'if (0 && n > usable)'
	m tcache_gen_check tcache.c \
		'if (unlikely(tc->gen != kh.gen)) {' \
		'if (0) {'
	m medium_cache_byte_limit tcache.h \
		' || tc->med_bytes + u > tc->med_limit' \
		''
	m window_ignores_phys window.c \
		'return raw + ((phys - raw) & (WINDOW_ALIGN - 1));' \
		'(void)phys;\n\treturn (raw + WINDOW_ALIGN - 1) & ~(uintptr_t)(WINDOW_ALIGN - 1);'
	m double_free_fast_path kheap.c \
		'if (unlikely(*lv != LIVE_USED))\n\t\t\tbad_pointer("kheap_free", p);' \
		''
	m double_free_slow_path kheap.c \
		'if (*lv != LIVE_USED)\n\t\tbad_pointer(fn, p);' \
		''
	m free_single_thread_marks_nothing kheap.c \
		'tc->sweep_in--;\n\t\t\t\t*lv = LIVE_FREED;' \
		'tc->sweep_in--;'
	m free_single_thread_ignores_live kheap.c \
		'likely(k - 1u < NCLASS) && likely(*lv == LIVE_USED)' \
		'likely(k - 1u < NCLASS)'
	m realloc_never_alone kheap.c \
		'alone = n > old && grows_alone(n);' \
		'alone = 0;'
	m free_marks_nothing kheap.c \
		'*live_block("kheap_free", p) = LIVE_FREED;' \
		'(void)live_block("kheap_free", p);'
	m fork_child_reset_late arena.c \
		'if (!kh.fork_child_done && (int)getpid() != kh.fork_pid)' \
		'if (0)'
	m fork_lock_not_passed internal.h \
		'if (unlikely(kh_in_fork)) {\n\t\theap_fork_sync();\n\t\treturn;\n\t}\n\tkheap_lock(&kh.lock);' \
		'kheap_lock(&kh.lock);'
	m errno_passed_through kheap.c \
		'static int alloc_errno(int err)\n{\n' \
		'static int alloc_errno(int err)\n{\n\treturn err;\n'
	m phys_withheld_bound_first kheap.c \
		'if (v - khm.lo >= khm.span || khm.kind[gran_of(v)] == K_NONE) {' \
		'if (v - khm.lo >= khm.span || khm.kind[gran_of(v)] == K_NONE ||\n\t    v - khm.base >= khm.pool_size) {'
	m checker_blind_to_duplicates check.c \
		'if (i && c->cached[i] == c->cached[i - 1])' \
		'if (0)'
	m tlsf_no_coalesce_next tlsf.c \
		'if (bfree(n)) {\n\t\tremove_free(t, n);\n\t\tst(b, ld(b) + bsize(n));' \
		'if (0) {\n\t\tremove_free(t, n);\n\t\tst(b, ld(b) + bsize(n));'
	m slab_class_off_by_one slab.c \
		'\t31,\n};' \
		'\t30,\n};'
	m trim_skips_idle_caches tcache.c \
		'if (any && !__atomic_load_n(&tc->busy, __ATOMIC_ACQUIRE)) {' \
		'if (0) {'
	m spare_bound_ignored arena.c \
		'for (a = kh.arenas; a && kh.cached_bytes' \
		'for (a = kh.arenas; 0 && kh.cached_bytes'
	m fork_child_keeps_spares arena.c \
		'if (keep)\n\t\theap_reclaim();' \
		'if (0)\n\t\theap_reclaim();'
	m idle_sweep_off tcache.h \
		'if (__builtin_expect(--tc->sweep_in == 0, 0))' \
		'if (0)'
	m calloc_clears_fresh_chunk kheap.c \
		'if (p && dirty > (uintptr_t)p)' \
		'if (p && (dirty = (uintptr_t)p + n))'
	m medium_batch_marked_in_use tcache.c \
		'*live_of((uintptr_t)p) = LIVE_FREED;\n\t\tif (!tc_med_push' \
		'*live_of((uintptr_t)p) = LIVE_USED;\n\t\tif (!tc_med_push'
	m medium_batch_not_counted tcache.c \
		'\t\tkh.out += u;\n\t\tif (kh.out > kh.peak_out)' \
		'\t\tif (kh.out > kh.peak_out)'
	m medium_overflow_keeps_batch tcache.c \
		'if (m->fill > 1)\n\t\t\t\tm->fill /= 2;' \
		'(void)0;'
	m medium_overflow_one_block kheap.c \
		'tcache_med_overflow(tc, p, u);\n\t\t\t\tcached = 1;' \
		'(void)0;'
}

selected() {
	[ -z "$want" ] && return 0
	case " $want " in *" $1 "*) return 0 ;; esac
	return 1
}

# Apply the mutation to the copy; 1 if OLD is not in the file.
mutate() {
	OLD=$2 NEW=$3 perl -0777 -i -pe '
		BEGIN {
			for my $k (qw(OLD NEW)) {
				$ENV{$k} =~ s/\\n/\n/g;
				$ENV{$k} =~ s/\\t/\t/g;
			}
		}
		my $i = index($_, $ENV{OLD});
		if ($i >= 0) {
			substr($_, $i, length $ENV{OLD}) = $ENV{NEW};
			$hit = 1;
		}
		END { exit($hit ? 0 : 1) }' "$1"
}

run_mutant() {
	name=$1
	n=$((n + 1))
	rm -rf "$work/userlib"
	mkdir -p "$work/userlib"
	cp -R "$here/." "$work/userlib/"
	rm -rf "$work/userlib/build"
	ln -sfn "$top/include" "$work/include"
	t0=$(date +%s)
	if ! mutate "$work/userlib/$2" "$3" "$4"; then
		echo "not ok $n $name # the mutation does not apply to $2"
		return
	fi
	caught= built=1
	for t in $tests; do
		if ! make -s -C "$work/userlib" -j"$jobs" "build/tests/$t" \
			>"$work/build.log" 2>&1; then
			built=
			break
		fi
		if ! timeout "$limit" "$work/userlib/build/tests/$t" \
			>"$work/run.log" 2>&1; then
			caught=$t
			break
		fi
	done
	secs=$(($(date +%s) - t0))
	if [ -z "$built" ]; then
		echo "not ok $n $name # does not build:"
		sed 's/^/# /' "$work/build.log" | head -5
	elif [ -n "$caught" ]; then
		echo "ok $n $name # caught by $caught (${secs}s)"
		grep -m 3 -E '^not ok|CHECK|libkheap:|kheap check' "$work/run.log" |
			sed 's/^/#   /'
	else
		echo "not ok $n $name # the whole suite passed (${secs}s)"
	fi
}

want="$*"
total=0
m() { if selected "$1"; then total=$((total + 1)); fi; }
mutants
echo "TAP version 13"
echo "1..$total"
start=$(date +%s)
n=0
m() { if selected "$1"; then run_mutant "$@"; fi; }
mutants | tee "$work/ktap"
pass=$(grep -c '^ok ' "$work/ktap")
fail=$(grep -c '^not ok ' "$work/ktap")
echo "# $(($(date +%s) - start)) seconds"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" = 0 ] && [ "$pass" = "$total" ]
