/* Tries the system calls a sandbox must refuse and prints one line per try:
 * "<name> ok" if the kernel let it happen, "<name> denied <errno>" if not.
 * Built static by the e2e tests and run inside a container. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>

static void report(const char *name, long r) {
    if (r < 0)
        printf("%s denied %s\n", name, strerrorname_np(errno));
    else
        printf("%s ok\n", name);
}

static long prctl_set_mm(void) {
    /* PR_SET_MM, PR_SET_MM_START_CODE: needs CAP_SYS_RESOURCE natively; the Sentry refuses it outright */
    return syscall(SYS_prctl, 35, 1, 0, 0, 0);
}

int main(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    report("ptrace", ptrace(PTRACE_ATTACH, 1, 0, 0));
    report("keyctl", syscall(SYS_keyctl, 1 /* JOIN_SESSION_KEYRING */, "moat-probe"));
    char params[120];
    memset(params, 0, sizeof params);
    report("io_uring_setup", syscall(SYS_io_uring_setup, 4, params));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.size = sizeof pe;
    pe.type = PERF_TYPE_SOFTWARE;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    report("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
    report("init_module", syscall(SYS_init_module, "", 0, ""));
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("unshare_net", unshare(CLONE_NEWNET));
    report("setns", setns(0, 0));
    report("mount", mount("none", "/tmp", "tmpfs", 0, ""));
    report("packet_socket", socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
    report("netlink_uevent", socket(AF_NETLINK, SOCK_DGRAM, 15 /* NETLINK_KOBJECT_UEVENT */));
    /* TIOCSTI on a terminal of our own (a pty), so only a refusal can fail it */
    char c = 'x';
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    long sti = -1;
    if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0) {
        int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
        if (slave >= 0)
            sti = ioctl(slave, TIOCSTI, &c);
        else
            printf("# no pty slave: %s\n", strerror(errno));
    } else {
        printf("# no pty: %s\n", strerror(errno));
    }
    report("tiocsti", sti);
    report("prctl_set_mm", prctl_set_mm());
    fflush(stdout);
    long child = syscall(SYS_clone, CLONE_NEWPID | 17 /* SIGCHLD */, 0, 0, 0, 0);
    if (child == 0)
        _exit(0);
    report("clone_newpid", child);
    return 0;
}
