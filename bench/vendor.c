/* Vendor rows run in a child process (this same program, exec'd with --vendor-server),
 * so that a vendor that aborts (OpenBLAS's "too many memory regions") or crashes costs
 * one measurement, not the run. One request at a time, one line each way:
 *
 *   parent                          child
 *   (start)                         HELLO <libraries loaded> | NA <why none>
 *   ROW <row spec>                  READY <routine> | NA <why> | FAIL <why>
 *   VERIFY <threads>                OK <worst err/tol> | FAIL <why> | NA <why>
 *   RUN <threads> <seconds> <mutex> DONE <ops> <seconds> | FAIL <why> | NA <why>
 *
 * The child's stdout and stderr go to a scratch file; when it dies, the parent reports
 * the signal and the file's last lines. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void one_line(char *s) /* replies are single lines */
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

/* ---------------------------------------------------------------- the child */

typedef struct server {
    const vendor_backend *be;
    void *lib;
    problem p;
    int have_row;
    void *ctx[2]; /* plain, behind the mutex */
    expected_out keep;
    int kept;
} server;

static void server_drop_row(server *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->ctx[i])
            s->be->ctx_destroy(s->ctx[i]);
        s->ctx[i] = NULL;
    }
    if (s->kept)
        expected_free(&s->keep);
    s->kept = 0;
    if (s->have_row)
        problem_free(&s->p);
    s->have_row = 0;
}

static void server_verify(server *s, int threads, char *reply, size_t len)
{
    verdict vd;
    char err[300];
    if (s->kept)
        expected_free(&s->keep);
    s->kept = 0;
    int r = verify_threads(s->be->vt, s->ctx[0], &s->p, threads, 0, &s->keep, &vd, err, sizeof err);
    if (r != BENCH_OK)
        snprintf(reply, len, "%s %s", r == BENCH_NA ? "NA" : "FAIL", err);
    else if (!vd.ok)
        snprintf(reply, len, "FAIL %s", vd.text);
    else {
        s->kept = 1;
        snprintf(reply, len, "OK %.4g", vd.worst);
    }
}

int vendor_server_main(int argc, char **argv)
{
    if (argc < 8)
        return 2;
    int infd = atoi(argv[2]), outfd = atoi(argv[3]);
    vendor_options o = {strcmp(argv[4], "cuda") == 0, atoi(argv[5]), argv[6], argv[7]};
    FILE *in = fdopen(infd, "r"), *out = fdopen(outfd, "w");
    if (!in || !out)
        return 2;
    server s;
    memset(&s, 0, sizeof s);
    s.be = o.cuda ? &vendor_cuda_backend : &vendor_cpu_backend;
    char desc[1024] = "", err[1024] = "", line[4096], reply[1400];
    int r = s.be->init(&o, &s.lib, desc, sizeof desc, err, sizeof err);
    one_line(desc);
    one_line(err);
    fprintf(out, r == BENCH_OK ? "HELLO %s\n" : "NA %s\n", r == BENCH_OK ? desc : err);
    fflush(out);
    if (r != BENCH_OK)
        return 0;
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = 0;
        reply[0] = 0;
        if (!strncmp(line, "ROW ", 4)) {
            server_drop_row(&s);
            row_spec spec;
            char impl[300];
            if (spec_from_line(&spec, line + 4) != 0)
                snprintf(reply, sizeof reply, "FAIL bad row '%.200s'", line + 4);
            else if (problem_init(&s.p, &spec, err, sizeof err) != 0)
                snprintf(reply, sizeof reply, "FAIL %s", err);
            else if ((s.have_row = 1, s.be->supports(s.lib, &s.p, impl, sizeof impl)) != BENCH_OK)
                snprintf(reply, sizeof reply, "NA %s", impl);
            else if (!(s.ctx[0] = s.be->ctx_create(s.lib, &s.p, 0)) ||
                     !(s.ctx[1] = s.be->ctx_create(s.lib, &s.p, 1)))
                snprintf(reply, sizeof reply, "FAIL out of host memory");
            else
                snprintf(reply, sizeof reply, "READY %s", impl);
        } else if (!strncmp(line, "VERIFY ", 7) && s.ctx[0]) {
            server_verify(&s, atoi(line + 7), reply, sizeof reply);
        } else if (!strncmp(line, "RUN ", 4) && s.ctx[0]) {
            int threads = 1, mutex = 0;
            double seconds = 0.5;
            sscanf(line + 4, "%d %lf %d", &threads, &seconds, &mutex);
            if (!s.kept) /* a new child after a crash: verify again before timing */
                server_verify(&s, 1, reply, sizeof reply);
            if (s.kept) {
                postcheck pc = {&s.p, &s.keep, 0};
                window_result w;
                run_window(s.be->vt, s.ctx[mutex ? 1 : 0], threads, seconds, 0, postcheck_fn, &pc,
                           &w);
                if (w.status == BENCH_OK)
                    snprintf(reply, sizeof reply, "DONE %llu %.9f", (unsigned long long)w.ops,
                             w.seconds);
                else
                    snprintf(reply, sizeof reply, "%s %s", w.status == BENCH_NA ? "NA" : "FAIL", w.err);
            }
        } else if (!strcmp(line, "QUIT")) {
            break;
        } else {
            snprintf(reply, sizeof reply, "FAIL unexpected request '%.200s'", line);
        }
        one_line(reply);
        fprintf(out, "%s\n", reply);
        fflush(out);
    }
    server_drop_row(&s);
    return 0;
}

/* ---------------------------------------------------------------- the parent */

struct vendor_proc {
    char *exe, *blas, *cuda_dirs;
    char *coretype;
    int cuda, ordinal;
    pid_t pid;
    int wfd, rfd, errfd;
    char rbuf[8192];
    size_t rlen;
    char row[512];
    char desc[1024];
    int unavailable;
};

vendor_proc *vendor_proc_new(const char *self_exe, const vendor_options *o, const char *coretype)
{
    vendor_proc *vp = calloc(1, sizeof *vp);
    if (!vp)
        return NULL;
    vp->exe = strdup(self_exe);
    vp->blas = strdup(o->blas ? o->blas : "");
    vp->cuda_dirs = strdup(o->cuda_dirs ? o->cuda_dirs : "");
    vp->cuda = o->cuda;
    vp->ordinal = o->ordinal;
    if (coretype) {
        size_t n = strlen(coretype) + sizeof "OPENBLAS_CORETYPE=";
        if ((vp->coretype = malloc(n)))
            snprintf(vp->coretype, n, "OPENBLAS_CORETYPE=%s", coretype);
    }
    vp->errfd = -1;
    char tmpl[] = "/tmp/alloy-bench-vendor-XXXXXX";
    vp->errfd = mkstemp(tmpl);
    if (vp->errfd >= 0) {
        unlink(tmpl);
        fcntl(vp->errfd, F_SETFD, FD_CLOEXEC);
    }
    return vp;
}

static void child_reap(vendor_proc *vp, char *why, size_t len)
{
    int st = 0;
    close(vp->wfd);
    close(vp->rfd);
    if (waitpid(vp->pid, &st, 0) == vp->pid) {
        if (WIFSIGNALED(st))
            snprintf(why, len, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
            snprintf(why, len, "exited with status %d", WEXITSTATUS(st));
    } else {
        snprintf(why, len, "lost");
    }
    vp->pid = 0;
    vp->row[0] = 0;
    vp->rlen = 0;
}

/* The scratch file's last lines, on one line. */
static void child_stderr_tail(vendor_proc *vp, char *buf, size_t len)
{
    buf[0] = 0;
    if (vp->errfd < 0 || len < 2)
        return;
    off_t end = lseek(vp->errfd, 0, SEEK_END);
    off_t from = end > 400 ? end - 400 : 0;
    char tmp[401];
    ssize_t n = pread(vp->errfd, tmp, (size_t)(end - from), from);
    if (n <= 0)
        return;
    tmp[n] = 0;
    while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == ' '))
        tmp[--n] = 0;
    one_line(tmp);
    snprintf(buf, len, "%s", tmp);
}

static int read_line(vendor_proc *vp, char *out, size_t len, double timeout_s)
{
    double until = now_seconds() + timeout_s;
    for (;;) {
        char *nl = memchr(vp->rbuf, '\n', vp->rlen);
        if (nl) {
            size_t n = (size_t)(nl - vp->rbuf);
            snprintf(out, len, "%.*s", (int)n, vp->rbuf);
            memmove(vp->rbuf, nl + 1, vp->rlen - n - 1);
            vp->rlen -= n + 1;
            return 0;
        }
        double left = until - now_seconds();
        if (left <= 0)
            return -2;
        struct pollfd pf = {vp->rfd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return -2;
        if (vp->rlen == sizeof vp->rbuf)
            return -1;
        ssize_t n = read(vp->rfd, vp->rbuf + vp->rlen, sizeof vp->rbuf - vp->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        vp->rlen += (size_t)n;
    }
}

static int write_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Environment for the child: one BLAS thread per application thread; optionally the
 * OpenBLAS core type (Debian's OpenBLAS misdetects AVX-512 CPUs as Prescott). */
static char **child_env(const vendor_proc *vp)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "OPENBLAS_NUM_THREADS=", 21) &&
            strncmp(environ[i], "OMP_NUM_THREADS=", 16))
            env[k++] = environ[i];
    env[k++] = "OPENBLAS_NUM_THREADS=1";
    env[k++] = "OMP_NUM_THREADS=1";
    if (vp->coretype) {
        for (size_t i = 0; i < k; i++) /* replaces the environment's own */
            if (!strncmp(env[i], "OPENBLAS_CORETYPE=", 18))
                env[i] = env[--k];
        env[k++] = vp->coretype;
    }
    env[k] = NULL;
    return env;
}

static int spawn(vendor_proc *vp, char *reply, size_t len)
{
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0)
        goto fail;
    if (pipe(from_child) != 0) {
        close(to_child[0]);
        close(to_child[1]);
        goto fail;
    }
    fcntl(to_child[1], F_SETFD, FD_CLOEXEC);
    fcntl(from_child[0], F_SETFD, FD_CLOEXEC);
    char fin[16], fout[16], ord[16];
    snprintf(fin, sizeof fin, "%d", to_child[0]);
    snprintf(fout, sizeof fout, "%d", from_child[1]);
    snprintf(ord, sizeof ord, "%d", vp->ordinal);
    char *argv[] = {vp->exe, "--vendor-server", fin, fout, vp->cuda ? "cuda" : "cpu", ord,
                    vp->blas, vp->cuda_dirs, NULL};
    char **env = child_env(vp);
    if (vp->errfd >= 0 && ftruncate(vp->errfd, 0) == 0)
        lseek(vp->errfd, 0, SEEK_SET);
    pid_t pid = env ? fork() : -1;
    if (pid == 0) { /* only async-signal-safe calls until exec */
        if (vp->errfd >= 0) {
            dup2(vp->errfd, 1);
            dup2(vp->errfd, 2);
        }
        execve(vp->exe, argv, env);
        _exit(127);
    }
    free(env);
    close(to_child[0]);
    close(from_child[1]);
    if (pid < 0) {
        close(to_child[1]);
        close(from_child[0]);
        goto fail;
    }
    vp->pid = pid;
    vp->wfd = to_child[1];
    vp->rfd = from_child[0];
    vp->rlen = 0;
    vp->row[0] = 0;
    char hello[1100];
    if (read_line(vp, hello, sizeof hello, 120) != 0) {
        char why[200], tail[420];
        kill(vp->pid, SIGKILL);
        child_reap(vp, why, sizeof why);
        child_stderr_tail(vp, tail, sizeof tail);
        snprintf(reply, len, "DIED vendor process did not start (%s)%s%s", why, *tail ? ": " : "",
                 tail);
        vp->unavailable = 1;
        snprintf(vp->desc, sizeof vp->desc, "%s", reply + 5);
        return -1;
    }
    if (!strncmp(hello, "HELLO ", 6)) {
        snprintf(vp->desc, sizeof vp->desc, "%.1000s", hello + 6);
        return 0;
    }
    /* NA: no library or no GPU; the child has exited. */
    snprintf(vp->desc, sizeof vp->desc, "%.1000s", strncmp(hello, "NA ", 3) ? hello : hello + 3);
    snprintf(reply, len, "NA vendor unavailable: %s", vp->desc);
    vp->unavailable = 1;
    char why[200];
    child_reap(vp, why, sizeof why);
    return -1;
fail:
    snprintf(reply, len, "DIED cannot start the vendor process: %s", strerror(errno));
    return -1;
}

static int exchange(vendor_proc *vp, const char *msg, double timeout_s, char *reply, size_t len)
{
    int rc = write_all(vp->wfd, msg);
    if (rc == 0)
        rc = read_line(vp, reply, len, timeout_s);
    if (rc == 0)
        return 0;
    char why[200], tail[420];
    if (rc == -2)
        kill(vp->pid, SIGKILL);
    child_reap(vp, why, sizeof why);
    child_stderr_tail(vp, tail, sizeof tail);
    snprintf(reply, len, "DIED vendor process %s%s%s%s", rc == -2 ? "timed out, " : "", why,
             *tail ? "; its last output: " : "", tail);
    return -1;
}

int vendor_request(vendor_proc *vp, const row_spec *row, const char *cmd, double timeout_s,
                   char *reply, size_t len)
{
    if (vp->unavailable) {
        snprintf(reply, len, "NA vendor unavailable: %s", vp->desc);
        return -1;
    }
    if (!vp->pid && spawn(vp, reply, len) != 0)
        return -1;
    char spec[512], msg[700];
    spec_to_line(row, spec, sizeof spec);
    if (strcmp(spec, vp->row) != 0) {
        snprintf(msg, sizeof msg, "ROW %s\n", spec);
        if (exchange(vp, msg, 600, reply, len) != 0)
            return -1;
        if (strncmp(reply, "READY ", 6) != 0)
            return -1;
        snprintf(vp->row, sizeof vp->row, "%s", spec);
        if (!strcmp(cmd, "ROW"))
            return 0;
    } else if (!strcmp(cmd, "ROW")) {
        snprintf(reply, len, "READY (loaded)");
        return 0;
    }
    snprintf(msg, sizeof msg, "%s\n", cmd);
    return exchange(vp, msg, timeout_s, reply, len);
}

int vendor_proc_start(vendor_proc *vp, char *reply, size_t len)
{
    if (vp->unavailable) {
        snprintf(reply, len, "NA vendor unavailable: %s", vp->desc);
        return -1;
    }
    return vp->pid ? 0 : spawn(vp, reply, len);
}

const char *vendor_proc_description(const vendor_proc *vp) { return vp->desc; }
int vendor_proc_unavailable(const vendor_proc *vp) { return vp->unavailable; }

void vendor_proc_free(vendor_proc *vp)
{
    if (!vp)
        return;
    if (vp->pid) {
        char why[200];
        write_all(vp->wfd, "QUIT\n");
        child_reap(vp, why, sizeof why);
    }
    if (vp->errfd >= 0)
        close(vp->errfd);
    free(vp->exe);
    free(vp->blas);
    free(vp->cuda_dirs);
    free(vp->coretype);
    free(vp);
}
