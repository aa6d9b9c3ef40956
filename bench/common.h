/* SPDX-License-Identifier: BSD-3-Clause */
/* What the benchmark programs share: clocks, percentiles, pinning, the
 * load of their cpus, and the micro-shaped results, table and JSON. */

#ifndef EBBRT_BENCH_COMMON_H
#define EBBRT_BENCH_COMMON_H

#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>

/* --- time --- */

/* CLOCK_MONOTONIC in ns. Inline: it brackets what is measured. */
static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep @ns, going on after a signal until all of it has passed. */
void bench_sleep_ns(uint64_t ns);

/* --- samples --- */

/* qsort() comparators of uint64_t and of int64_t, ascending. */
int bench_cmp_u64(const void *a, const void *b);
int bench_cmp_i64(const void *a, const void *b);

/* Percentile @p (0..1) of @n (at least 1) sorted samples, nearest rank. */
uint64_t bench_pct_u64(const uint64_t *v, size_t n, double p);
int64_t bench_pct_i64(const int64_t *v, size_t n, double p);

/* --- cpus and the machine --- */

/* Pin the calling thread to @cpu; @old (may be NULL) first gets the set
 * it had. 0 or -errno (EINVAL: @cpu is not allowed to us). */
int bench_pin_self(int cpu, cpu_set_t *old);

/* The 1-minute load average, -1 when unknown. */
double bench_loadavg(void);

/* False only when /proc/meminfo says no 2 MiB hugepage is free; true
 * when it cannot tell (what needs them will then say). */
bool bench_hugepages_free(void);

/* The commands, one an indented line, that give us hugepages (as root). */
#define BENCH_HUGEPAGE_FIX                                                  \
	"  echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/"         \
	"nr_hugepages\n"                                                   \
	"  mkdir -p /dev/hugepages\n"                                      \
	"  mountpoint -q /dev/hugepages || "                               \
	"mount -t hugetlbfs nodev /dev/hugepages\n"

/* Time of some cpus from /proc/stat since boot, in ns. */
struct bench_cpu_stat {
	double busy;	/* user, nice, system, irq and softirq */
	double irq;	/* of which irq and softirq: charged to no process */
	double steal;	/* taken by the hypervisor */
};

/* Sum over the @n cpus of @cpus into @out (zeros first); how many of them
 * /proc/stat has (0 when it cannot be read). */
unsigned bench_cpu_stat(const int *cpus, unsigned n,
			struct bench_cpu_stat *out);

/* user + system time of @ru, in ns. */
double bench_rusage_ns(const struct rusage *ru);

/*
 * The use of two cpus at one moment: taken before and after a step, it
 * tells whether other work shared the cpus, which skews ebbrt figures
 * and baselines alike.
 */
struct bench_cpu_use {
	uint64_t t;		/* bench_now_ns() when taken */
	double busy, steal;	/* of the two cpus, ns */
	double ours;		/* us and our waited-for children */
	int cpu[2];
	bool ok;		/* both cpus were found */
};

struct bench_cpu_use bench_cpu_use(int cpu_a, int cpu_b);

/* When others used or the hypervisor stole 5% or more of the two cpus
 * between @u0 and @u1: a note "@step: other processes used ..." into
 * @buf and true. */
bool bench_contention_note(const struct bench_cpu_use *u0,
			   const struct bench_cpu_use *u1, const char *step,
			   char *buf, size_t len);

/* --- processes --- */

/* The directory of this program into @out. 0 or -errno (ENAMETOOLONG:
 * it does not fit in @len). */
int bench_self_dir(char *out, size_t len);

/* Wait up to @sec for child @pid; true with its @status when it ended. */
bool bench_wait_for(pid_t pid, double sec, int *status);

/* --- notes printed under a table --- */

/* Keep a note (up to 32; more are dropped). */
__attribute__((format(printf, 1, 2))) void bench_note(const char *fmt, ...);

/* Print the notes kept, one "note: ..." line each. */
void bench_print_notes(void);

/* --- results in the shape of ebbrt-bench-micro --- */

enum bench_target {
	BENCH_TGT_NONE,		/* informative only */
	BENCH_TGT_MAX,		/* value <= target */
	BENCH_TGT_RATIO,	/* value / baseline <= target */
	BENCH_TGT_OVER,		/* value - baseline <= target */
};

enum { BENCH_REC_RESULT = 1, BENCH_REC_NOTE };

/* A figure against its baseline, or a note (@kind). Plain data: micro
 * sends it through a pipe in one write. */
struct bench_record {
	int kind;
	int tkind;		/* enum bench_target */
	double value;
	double baseline;
	double target;
	char metric[64];
	char unit[8];
	char stat[24];
	char baseline_name[64];
	char note[240];
};

/* Fill @r (all of it) with a result of micro's arguments. */
void bench_record_result(struct bench_record *r, const char *metric,
			 const char *unit, double value, double baseline,
			 const char *baseline_name, const char *stat,
			 int tkind, double target);

/* Fill @r (all of it) with a note, from a printf format and its @ap. */
__attribute__((format(printf, 2, 0))) void bench_record_vnote(
	struct bench_record *r, const char *fmt, va_list ap);

/* A growing array of records. */
struct bench_records {
	struct bench_record *v;
	size_t n, cap;
};

/* Append a copy of @r. 0 or -ENOMEM. */
int bench_records_add(struct bench_records *rs, const struct bench_record *r);

/* The results as a table (a header line, a line each), then the notes.
 * The caller prints what to read it by between the two. */
void bench_records_table(const struct bench_records *rs);
void bench_records_notes(const struct bench_records *rs);

/* The results as a JSON array at @path; 0 or -errno, said why on stderr
 * after "@prog: ". */
int bench_records_json(const struct bench_records *rs, const char *path,
		       const char *prog);

/* --- JSON of such results, built by the caller --- */

/* One object of the array. */
struct bench_json_row {
	const char *metric;
	double value;
	const char *unit;
	double baseline;
	bool no_baseline;	/* "baseline": null */
	const char *baseline_name;
	const char *stat;
	const char *target;	/* NULL: no target, "ok" is null too */
	int ok;			/* 1 met, 0 missed, -1 unknown */
};

/* Open @path and start the array; NULL, said why after "@prog: ". */
FILE *bench_json_open(const char *path, const char *prog);

/* Write @r; *@first says whether it is the first object, and is cleared. */
void bench_json_put(FILE *f, const struct bench_json_row *r, bool *first);

/* End the array and close @f. 0 or -errno, said why after "@prog: ". */
int bench_json_close(FILE *f, const char *path, const char *prog);

/* The gnuplot terminal to draw with: pngcairo, else png, else svg; NULL
 * without gnuplot. */
const char *bench_plot_terminal(void);

/* The clock (bench_now_ns()) @sec seconds from now. */
static inline uint64_t bench_deadline(double sec)
{
	return bench_now_ns() + (uint64_t)(sec * 1e9);
}

/* One line of @fd (the newline dropped) into @buf before the deadline
 * @end (bench_now_ns() time); false at end of file or past @end. */
bool bench_read_line(int fd, char *buf, size_t len, uint64_t end);

#endif
