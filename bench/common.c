/* SPDX-License-Identifier: BSD-3-Clause */
/* What the benchmark programs share; common.h says what each does. */

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* --- time and samples --- */

void bench_sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

int bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The 1-based rank of percentile @p of @n samples. */
static size_t rank(size_t n, double p)
{
	size_t i = (size_t)(p * (double)n + 0.999999);

	if (i == 0)
		i = 1;
	if (i > n)
		i = n;
	return i;
}

uint64_t bench_pct_u64(const uint64_t *v, size_t n, double p)
{
	return v[rank(n, p) - 1];
}

int64_t bench_pct_i64(const int64_t *v, size_t n, double p)
{
	return v[rank(n, p) - 1];
}

/* --- cpus and the machine --- */

int bench_pin_self(int cpu, cpu_set_t *old)
{
	cpu_set_t set;

	if (old != NULL)
		sched_getaffinity(0, sizeof(*old), old);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	return 0;
}

double bench_loadavg(void)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double l = -1;

	if (f != NULL) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

bool bench_hugepages_free(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	long free_pages = -1;

	if (f == NULL)
		return true;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %ld", &free_pages) == 1)
			break;
	fclose(f);
	return free_pages != 0;
}

unsigned bench_cpu_stat(const int *cpus, unsigned n,
			struct bench_cpu_stat *out)
{
	double tick = 1e9 / (double)sysconf(_SC_CLK_TCK);
	unsigned long long v[8];
	char line[256];
	unsigned seen = 0;
	int cpu;
	FILE *f = fopen("/proc/stat", "r");

	memset(out, 0, sizeof(*out));
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned i;

		/* user nice system idle iowait irq softirq steal */
		if (sscanf(line,
			   "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu",
			   &cpu, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
			   &v[6], &v[7]) != 9)
			continue;
		for (i = 0; i < n && cpus[i] != cpu; i++)
			;
		if (i == n)
			continue;
		out->busy += (double)(v[0] + v[1] + v[2] + v[5] + v[6]) * tick;
		out->irq += (double)(v[5] + v[6]) * tick;
		out->steal += (double)v[7] * tick;
		seen++;
	}
	fclose(f);
	return seen;
}

double bench_rusage_ns(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec * 1e9 +
	       (double)ru->ru_utime.tv_usec * 1e3 +
	       (double)ru->ru_stime.tv_sec * 1e9 +
	       (double)ru->ru_stime.tv_usec * 1e3;
}

struct bench_cpu_use bench_cpu_use(int cpu_a, int cpu_b)
{
	struct bench_cpu_use u = { .t = bench_now_ns(),
				   .cpu = { cpu_a, cpu_b } };
	struct bench_cpu_stat s;
	struct rusage ru;

	/* Children count once waited for: a step waits for its own. */
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		u.ours += bench_rusage_ns(&ru);
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
		u.ours += bench_rusage_ns(&ru);
	u.ok = bench_cpu_stat(u.cpu, 2, &s) == 2;
	u.busy = s.busy;
	u.steal = s.steal;
	return u;
}

bool bench_contention_note(const struct bench_cpu_use *u0,
			   const struct bench_cpu_use *u1, const char *step,
			   char *buf, size_t len)
{
	double cap = 2.0 * (double)(u1->t - u0->t);
	double other, steal;

	if (!u0->ok || !u1->ok || u1->t <= u0->t)
		return false;
	other = (u1->busy - u0->busy - (u1->ours - u0->ours)) / cap * 100.0;
	steal = (u1->steal - u0->steal) / cap * 100.0;
	if (other < 5.0 && steal < 5.0)
		return false;
	snprintf(buf, len,
		 "%s: other processes used ~%.0f%% and the hypervisor stole "
		 "%.0f%% of cpus %d,%d: figures skewed",
		 step, other > 0 ? other : 0, steal, u0->cpu[0], u0->cpu[1]);
	return true;
}

/* --- processes --- */

int bench_self_dir(char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (k <= 0)
		return k < 0 ? -errno : -ENOENT;
	self[k] = '\0';
	if ((size_t)snprintf(out, len, "%s", dirname(self)) >= len)
		return -ENAMETOOLONG;
	return 0;
}

bool bench_wait_for(pid_t pid, double sec, int *status)
{
	uint64_t end = bench_now_ns() + (uint64_t)(sec * 1e9);

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return true;
		if (r < 0 && errno != EINTR)
			return false;
		if (bench_now_ns() > end)
			return false;
		bench_sleep_ns(10000000);
	}
}

/* --- notes --- */

static char notes[32][240];
static unsigned nnotes;

void bench_note(const char *fmt, ...)
{
	va_list ap;

	if (nnotes == sizeof(notes) / sizeof(notes[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(notes[nnotes++], sizeof(notes[0]), fmt, ap);
	va_end(ap);
}

void bench_print_notes(void)
{
	for (unsigned i = 0; i < nnotes; i++)
		printf("note: %s\n", notes[i]);
}

/* --- results --- */

void bench_record_result(struct bench_record *r, const char *metric,
			 const char *unit, double value, double baseline,
			 const char *baseline_name, const char *stat,
			 int tkind, double target)
{
	memset(r, 0, sizeof(*r));
	r->kind = BENCH_REC_RESULT;
	r->tkind = tkind;
	r->value = value;
	r->baseline = baseline;
	r->target = target;
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	snprintf(r->stat, sizeof(r->stat), "%s", stat);
	snprintf(r->baseline_name, sizeof(r->baseline_name), "%s",
		 baseline_name);
}

void bench_record_vnote(struct bench_record *r, const char *fmt, va_list ap)
{
	memset(r, 0, sizeof(*r));
	r->kind = BENCH_REC_NOTE;
	vsnprintf(r->note, sizeof(r->note), fmt, ap);
}

int bench_records_add(struct bench_records *rs, const struct bench_record *r)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct bench_record *v = realloc(rs->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n++] = *r;
	return 0;
}

static double ratio_of(const struct bench_record *r)
{
	return r->baseline > 0 ? r->value / r->baseline : 0;
}

/* 1 met, 0 missed, -1 no target or no figure. */
static int target_met(const struct bench_record *r)
{
	switch (r->tkind) {
	case BENCH_TGT_MAX:
		return r->value <= r->target;
	case BENCH_TGT_RATIO:
		return r->baseline > 0 ? ratio_of(r) <= r->target : -1;
	case BENCH_TGT_OVER:
		return r->value - r->baseline <= r->target;
	default:
		return -1;
	}
}

/* Three significant digits or so, no exponent. */
static void fmt_num(char *buf, size_t len, double v)
{
	if (v < 10)
		snprintf(buf, len, "%.2f", v);
	else if (v < 1000)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.0f", v);
}

static void fmt_target(char *buf, size_t len, const struct bench_record *r)
{
	char n[32];

	fmt_num(n, sizeof(n), r->target);
	switch (r->tkind) {
	case BENCH_TGT_MAX:
		snprintf(buf, len, "<=%s %s", n, r->unit);
		break;
	case BENCH_TGT_RATIO:
		snprintf(buf, len, "<=%sx", n);
		break;
	case BENCH_TGT_OVER:
		snprintf(buf, len, "<=base+%s %s", n, r->unit);
		break;
	default:
		snprintf(buf, len, "-");
	}
}

void bench_records_table(const struct bench_records *rs)
{
	char v[32], b[32], ra[32], tg[48];

	printf("\n%-38s %9s %-4s %9s %7s %-15s %-4s  %-12s %s\n", "metric",
	       "value", "unit", "baseline", "ratio", "target", "ok", "stat",
	       "baseline is");
	for (size_t i = 0; i < rs->n; i++) {
		const struct bench_record *r = &rs->v[i];
		int ok;

		if (r->kind != BENCH_REC_RESULT)
			continue;
		ok = target_met(r);
		fmt_num(v, sizeof(v), r->value);
		fmt_num(b, sizeof(b), r->baseline);
		if (r->baseline > 0)
			snprintf(ra, sizeof(ra), "%.2fx", ratio_of(r));
		else
			snprintf(ra, sizeof(ra), "n/a");
		fmt_target(tg, sizeof(tg), r);
		printf("%-38s %9s %-4s %9s %7s %-15s %-4s  %-12s %s\n",
		       r->metric, v, r->unit, b, ra, tg,
		       ok < 0 ? "-" : ok ? "ok" : "miss", r->stat,
		       r->baseline_name);
	}
}

void bench_records_notes(const struct bench_records *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->v[i].kind == BENCH_REC_NOTE)
			printf("note: %s\n", rs->v[i].note);
}

int bench_records_json(const struct bench_records *rs, const char *path,
		       const char *prog)
{
	FILE *f = bench_json_open(path, prog);
	bool first = true;
	char tg[48];

	if (f == NULL)
		return -errno;
	for (size_t i = 0; i < rs->n; i++) {
		const struct bench_record *r = &rs->v[i];
		struct bench_json_row row = {
			.metric = r->metric,
			.value = r->value,
			.unit = r->unit,
			.baseline = r->baseline,
			.baseline_name = r->baseline_name,
			.stat = r->stat,
			.ok = target_met(r),
		};

		if (r->kind != BENCH_REC_RESULT)
			continue;
		if (r->tkind != BENCH_TGT_NONE) {
			fmt_target(tg, sizeof(tg), r);
			row.target = tg;
		}
		bench_json_put(f, &row, &first);
	}
	return bench_json_close(f, path, prog);
}

/* --- JSON --- */

FILE *bench_json_open(const char *path, const char *prog)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return NULL;
	}
	fprintf(f, "[\n");
	return f;
}

void bench_json_put(FILE *f, const struct bench_json_row *r, bool *first)
{
	fprintf(f,
		"%s  {\"metric\": \"%s\", \"value\": %.6g, \"unit\": "
		"\"%s\", ",
		*first ? "" : ",\n", r->metric, r->value, r->unit);
	if (r->no_baseline)
		fprintf(f, "\"baseline\": null, ");
	else
		fprintf(f, "\"baseline\": %.6g, ", r->baseline);
	if (!r->no_baseline && r->baseline > 0)
		fprintf(f, "\"ratio\": %.6g, ", r->value / r->baseline);
	else
		fprintf(f, "\"ratio\": null, ");
	fprintf(f, "\"baseline_name\": \"%s\", \"stat\": \"%s\", ",
		r->baseline_name, r->stat);
	if (r->target == NULL)
		fprintf(f, "\"target\": null, \"ok\": null}");
	else
		fprintf(f, "\"target\": \"%s\", \"ok\": %s}", r->target,
			r->ok < 0 ? "null" : r->ok ? "true" : "false");
	*first = false;
}

int bench_json_close(FILE *f, const char *path, const char *prog)
{
	int rc = 0;

	fprintf(f, "\n]\n");
	if (fclose(f) != 0) {
		rc = -errno;
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(-rc));
	}
	return rc;
}

/* The gnuplot terminal: pngcairo, else png, else svg; NULL without
 * gnuplot. */
const char *bench_plot_terminal(void)
{
	FILE *p = popen("gnuplot -e 'set terminal' 2>&1", "r");
	char line[256];
	bool cairo = false, png = false, svg = false, any = false;

	if (p == NULL)
		return NULL;
	while (fgets(line, sizeof(line), p)) {
		char word[64];

		if (sscanf(line, " %63s", word) != 1)
			continue;
		any = true;
		cairo |= strcmp(word, "pngcairo") == 0;
		png |= strcmp(word, "png") == 0;
		svg |= strcmp(word, "svg") == 0;
	}
	if (pclose(p) != 0 || !any)
		return NULL;
	return cairo ? "pngcairo" : png ? "png" : svg ? "svg" : NULL;
}

bool bench_read_line(int fd, char *buf, size_t len, uint64_t end)
{
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = ((int64_t)end - (int64_t)bench_now_ns()) / 1000000;
		ssize_t k;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return false;
		k = read(fd, buf + n, 1);
		if (k <= 0)
			return false;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return true;
}
