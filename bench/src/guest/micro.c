/*
 * micro: the in-container half of moat-bench.
 *
 * Built by the bench with `gcc -O2 -static` and bind-mounted at /bench, so the
 * same binary runs under every runtime. It times itself with CLOCK_MONOTONIC
 * (a vDSO call under runc and runsc alike) and prints one result per line,
 * "<name> <value> <iterations>", which the bench parses from stdout.
 *
 *   micro syscalls <budget_ms> <scratch_dir>
 *       ns/op for getpid, stat and open+close (of a file it writes, and of
 *       /etc/passwd, a file of the image), pread/pwrite 4 KiB, mmap+munmap
 *       of 4 KiB and of 64 KiB (one page touched), pipe ping-pong, fork+wait,
 *       fork+exec+wait of /bench/noop
 *   micro files <dir> <count> <size>     us/file to create+write, read, unlink
 *   micro seq <dir> <mib>                MB/s for a sequential write (+fsync) and read
 *   micro time <runs> <argv...>          ms per fork+exec+wait of argv
 *   micro net <mib> <round trips>        MB/s of one TCP stream over 127.0.0.1, and
 *                                        µs per 1-byte request/response round trip
 *   micro serve                          servers on all addresses for a client
 *                                        outside: port 5001 sends bytes to each
 *                                        connection until it closes, port 5002
 *                                        answers HTTP/1.1 keep-alive requests
 *
 * Each syscall loop runs in batches until the time budget is spent (at least
 * MIN_ITERS iterations), so a slow runtime still finishes in bounded time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIN_ITERS 8
#define BLOCK 4096
#define MMAP_REGION (64 << 10)
#define SEQ_CHUNK (1 << 20)

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "micro: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* State shared by the syscall loops. */
static const char *g_scratch;
static char g_file[512];
static int g_fd = -1;
static int g_ping[2], g_pong[2];
static char g_buf[BLOCK];

typedef void (*op_fn)(long i);

static void op_getpid(long i) {
    (void)i;
    /* Raw syscall: glibc does not cache getpid today, but make sure. */
    syscall(SYS_getpid);
}

static void op_stat(long i) {
    struct stat st;
    (void)i;
    if (stat(g_file, &st) != 0) die("stat");
}

static void op_open_close(long i) {
    (void)i;
    int fd = open(g_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open");
    close(fd);
}

static void op_stat_image(long i) {
    struct stat st;
    (void)i;
    if (stat("/etc/passwd", &st) != 0) die("stat /etc/passwd");
}

static void op_open_close_image(long i) {
    (void)i;
    int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open /etc/passwd");
    close(fd);
}

static void op_pread(long i) {
    off_t off = (off_t)(i % 256) * BLOCK;
    if (pread(g_fd, g_buf, BLOCK, off) != BLOCK) die("pread");
}

static void op_pwrite(long i) {
    off_t off = (off_t)(i % 256) * BLOCK;
    if (pwrite(g_fd, g_buf, BLOCK, off) != BLOCK) die("pwrite");
}

static void op_mmap(long i) {
    (void)i;
    char *p = mmap(NULL, BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    p[0] = 1; /* fault the page in: that is where sandboxes differ */
    munmap(p, BLOCK);
}

static void op_mmap_64k(long i) {
    (void)i;
    char *p = mmap(NULL, MMAP_REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap 64k");
    p[0] = 1; /* one page of the 16 faulted in */
    munmap(p, MMAP_REGION);
}

static void op_pipe(long i) {
    char c = (char)i;
    if (write(g_ping[1], &c, 1) != 1) die("pipe write");
    if (read(g_pong[0], &c, 1) != 1) die("pipe read");
}

static void op_fork(long i) {
    (void)i;
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) _exit(0);
    if (waitpid(pid, NULL, 0) != pid) die("waitpid");
}

static void op_exec(long i) {
    (void)i;
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        char *argv[] = {"/bench/noop", NULL};
        char *envp[] = {NULL};
        execve(argv[0], argv, envp);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "micro: exec of /bench/noop failed\n");
        exit(2);
    }
}

/* Runs op in growing batches until budget_ns is spent; prints ns/op. */
static void measure(const char *name, op_fn op, double budget_ns) {
    long done = 0, batch = 1;
    double start = now_ns(), elapsed = 0;
    while (elapsed < budget_ns || done < MIN_ITERS) {
        for (long k = 0; k < batch; k++) op(done + k);
        done += batch;
        elapsed = now_ns() - start;
        if (batch < 4096) batch *= 2;
    }
    printf("%s %.1f %ld\n", name, elapsed / (double)done, done);
    fflush(stdout);
}

static void pipe_echo_child(void) {
    char c;
    close(g_ping[1]);
    close(g_pong[0]);
    while (read(g_ping[0], &c, 1) == 1) {
        if (write(g_pong[1], &c, 1) != 1) break;
    }
    _exit(0);
}

static int cmd_syscalls(double budget_ms, const char *scratch) {
    double budget = budget_ms * 1e6;
    g_scratch = scratch;
    snprintf(g_file, sizeof g_file, "%s/micro.dat", g_scratch);
    g_fd = open(g_file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (g_fd < 0) die("create scratch file");
    memset(g_buf, 'x', sizeof g_buf);
    for (int k = 0; k < 256; k++)
        if (write(g_fd, g_buf, BLOCK) != BLOCK) die("fill scratch file");

    measure("getpid", op_getpid, budget);
    measure("stat", op_stat, budget);
    measure("open+close", op_open_close, budget);
    measure("stat-image", op_stat_image, budget);
    measure("open+close-image", op_open_close_image, budget);
    measure("pread-4k", op_pread, budget);
    measure("pwrite-4k", op_pwrite, budget);
    measure("mmap+munmap", op_mmap, budget);
    measure("mmap-64k+munmap", op_mmap_64k, budget);

    if (pipe(g_ping) != 0 || pipe(g_pong) != 0) die("pipe");
    pid_t echo = fork();
    if (echo < 0) die("fork");
    if (echo == 0) pipe_echo_child();
    close(g_ping[0]);
    close(g_pong[1]);
    measure("pipe-pingpong", op_pipe, budget);
    close(g_ping[1]);
    close(g_pong[0]);
    waitpid(echo, NULL, 0);

    measure("fork+wait", op_fork, budget);
    measure("fork+exec+wait", op_exec, budget);

    close(g_fd);
    unlink(g_file);
    return 0;
}

static int cmd_files(const char *dir, long count, long size) {
    char path[512];
    char *buf = malloc((size_t)size);
    if (!buf) die("malloc");
    memset(buf, 'f', (size_t)size);

    double t0 = now_ns();
    for (long i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/f%06ld", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) die("create small file");
        if (write(fd, buf, (size_t)size) != size) die("write small file");
        close(fd);
    }
    double t1 = now_ns();
    for (long i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/f%06ld", dir, i);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) die("open small file");
        if (read(fd, buf, (size_t)size) != size) die("read small file");
        close(fd);
    }
    double t2 = now_ns();
    for (long i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/f%06ld", dir, i);
        if (unlink(path) != 0) die("unlink small file");
    }
    double t3 = now_ns();
    printf("small-create %.2f %ld\n", (t1 - t0) / 1e3 / (double)count, count);
    printf("small-read %.2f %ld\n", (t2 - t1) / 1e3 / (double)count, count);
    printf("small-delete %.2f %ld\n", (t3 - t2) / 1e3 / (double)count, count);
    free(buf);
    return 0;
}

static int cmd_seq(const char *dir, long mib) {
    char path[512];
    char *buf = malloc(SEQ_CHUNK);
    if (!buf) die("malloc");
    memset(buf, 's', SEQ_CHUNK);
    snprintf(path, sizeof path, "%s/seq.dat", dir);

    double t0 = now_ns();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("create seq file");
    for (long i = 0; i < mib; i++)
        if (write(fd, buf, SEQ_CHUNK) != SEQ_CHUNK) die("write seq file");
    if (fsync(fd) != 0) die("fsync seq file");
    close(fd);
    double t1 = now_ns();

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open seq file");
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, SEQ_CHUNK)) > 0) total += n;
    if (n < 0) die("read seq file");
    close(fd);
    double t2 = now_ns();
    unlink(path);

    double mb = (double)mib * 1048576.0 / 1e6;
    printf("seq-write %.1f %ld\n", mb / ((t1 - t0) / 1e9), mib);
    printf("seq-read %.1f %ld\n", ((double)total / 1e6) / ((t2 - t1) / 1e9), mib);
    free(buf);
    return 0;
}

static int cmd_time(long runs, char **argv) {
    double t0 = now_ns();
    for (long i = 0; i < runs; i++) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            execv(argv[0], argv);
            fprintf(stderr, "micro: exec %s: %s\n", argv[0], strerror(errno));
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid) die("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "micro: %s failed (status %d)\n", argv[0], status);
            return 1;
        }
    }
    printf("elapsed %.3f %ld\n", (now_ns() - t0) / 1e6 / (double)runs, runs);
    return 0;
}

/* A listening TCP socket on 127.0.0.1, port chosen by the stack. */
static int tcp_listener(struct sockaddr_in *addr) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *addr;
    if (bind(s, (struct sockaddr *)addr, len) != 0) die("bind");
    if (listen(s, 8) != 0) die("listen");
    if (getsockname(s, (struct sockaddr *)addr, &len) != 0) die("getsockname");
    return s;
}

static int tcp_connect(const struct sockaddr_in *addr) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0) die("socket");
    if (connect(c, (const struct sockaddr *)addr, sizeof *addr) != 0) die("connect");
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return c;
}

/* The server half: drains the stream and acks it with one byte, then echoes
 * each byte of the request/response connection until EOF. */
static void net_server(int s) {
    char *buf = malloc(SEQ_CHUNK);
    if (!buf) die("malloc");
    int c = accept(s, NULL, NULL);
    if (c < 0) die("accept");
    ssize_t n;
    while ((n = read(c, buf, SEQ_CHUNK)) > 0) {}
    if (write(c, "k", 1) != 1) die("ack");
    close(c);
    c = accept(s, NULL, NULL);
    if (c < 0) die("accept");
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b;
    while (read(c, &b, 1) == 1)
        if (write(c, &b, 1) != 1) break;
    _exit(0);
}

static int cmd_net(long mib, long trips) {
    struct sockaddr_in addr;
    int s = tcp_listener(&addr);
    pid_t server = fork();
    if (server < 0) die("fork");
    if (server == 0) net_server(s);
    close(s);
    char *buf = malloc(SEQ_CHUNK);
    if (!buf) die("malloc");
    memset(buf, 'n', SEQ_CHUNK);

    int c = tcp_connect(&addr);
    double t0 = now_ns();
    for (long i = 0; i < mib; i++) {
        long off = 0;
        while (off < SEQ_CHUNK) {
            ssize_t n = write(c, buf + off, SEQ_CHUNK - off);
            if (n <= 0) die("stream write");
            off += n;
        }
    }
    shutdown(c, SHUT_WR);
    char ack;
    if (read(c, &ack, 1) != 1) die("stream ack");
    double t1 = now_ns();
    close(c);

    c = tcp_connect(&addr);
    char b = 'r';
    for (long i = 0; i < 10; i++)
        if (write(c, &b, 1) != 1 || read(c, &b, 1) != 1) die("rr warm-up");
    double t2 = now_ns();
    for (long i = 0; i < trips; i++)
        if (write(c, &b, 1) != 1 || read(c, &b, 1) != 1) die("rr");
    double t3 = now_ns();
    close(c);
    waitpid(server, NULL, 0);

    printf("tcp-stream %.1f %ld\n", (double)mib * 1048576.0 / 1e6 / ((t1 - t0) / 1e9), mib);
    printf("tcp-rr %.2f %ld\n", (t3 - t2) / 1e3 / (double)trips, trips);
    free(buf);
    return 0;
}

/* A TCP socket listening on all addresses, IPv4 and IPv6, port `port`. */
static int any_listener(int port) {
    int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    int on = 1, off = 0;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
    if (listen(s, 64) != 0) die("listen");
    return s;
}

/* Port 5001's connections: bytes until the client goes. */
static void serve_source(int c) {
    char *buf = malloc(SEQ_CHUNK);
    if (!buf) die("malloc");
    memset(buf, 'p', SEQ_CHUNK);
    for (;;) {
        ssize_t n = write(c, buf, SEQ_CHUNK);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) _exit(0);
    }
}

/* Port 5002's connections: one small answer per request (a request ends
 * with an empty line; wrk sends GETs without bodies). */
static void serve_http(int c) {
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    char buf[4096];
    size_t have = 0;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (;;) {
        ssize_t n = read(c, buf + have, sizeof buf - have - 1);
        if (n <= 0) _exit(0);
        have += n;
        buf[have] = 0;
        char *end;
        while ((end = strstr(buf, "\r\n\r\n")) != NULL) {
            if (write(c, answer, sizeof answer - 1) != (ssize_t)(sizeof answer - 1)) _exit(0);
            size_t used = end + 4 - buf;
            memmove(buf, buf + used, have - used);
            have -= used;
            buf[have] = 0;
        }
        if (have == sizeof buf - 1) _exit(0);
    }
}

/* micro serve: a child per connection, until killed. */
static int cmd_serve(void) {
    signal(SIGCHLD, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct pollfd fds[2] = {{.fd = any_listener(5001), .events = POLLIN}, {.fd = any_listener(5002), .events = POLLIN}};
    printf("serving\n");
    fflush(stdout);
    for (;;) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR) die("poll");
        for (int i = 0; i < 2; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            int c = accept(fds[i].fd, NULL, NULL);
            if (c < 0) continue;
            pid_t p = fork();
            if (p == 0) {
                close(fds[0].fd);
                close(fds[1].fd);
                if (i == 0) serve_source(c);
                serve_http(c);
            }
            close(c);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "syscalls") == 0) return cmd_syscalls(atof(argv[2]), argv[3]);
    if (argc == 5 && strcmp(argv[1], "files") == 0) return cmd_files(argv[2], atol(argv[3]), atol(argv[4]));
    if (argc == 4 && strcmp(argv[1], "seq") == 0) return cmd_seq(argv[2], atol(argv[3]));
    if (argc >= 4 && strcmp(argv[1], "time") == 0) return cmd_time(atol(argv[2]), argv + 3);
    if (argc == 4 && strcmp(argv[1], "net") == 0) return cmd_net(atol(argv[2]), atol(argv[3]));
    if (argc == 2 && strcmp(argv[1], "serve") == 0) return cmd_serve();
    fprintf(stderr, "usage: micro syscalls|files|seq|time|net|serve ...\n");
    return 2;
}
