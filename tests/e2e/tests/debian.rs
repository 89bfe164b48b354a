//! Unmodified Debian programs run: bash, coreutils and friends, python3 and gcc from a debootstrapped
//! bookworm rootfs, each scenario under `--platform native` and `--platform sentry` with the same
//! expected output. The rootfs is shared and read-only; scratch space is a tmpfs on /tmp.

use moat_e2e::debian;
use moat_e2e::{assert_no_leaks, unique_id, Moat};

/// One test per platform for a scenario `fn(platform)`.
macro_rules! on_both_platforms {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn native() {
                super::$scenario("native");
            }
            #[test]
            fn sentry() {
                super::$scenario("sentry");
            }

        }
    )*};
}

on_both_platforms!(bash_script, text_tools, python3_stdlib, gcc_compiles_and_runs, process_tools);

/// The same scenarios on the sentry platform with `--directfs=false` (the
/// files served from the gofer). Not text_tools: GNU tar extracts a symlink
/// through a placeholder file whose device it compares between fstat of the
/// file it made (the real one) and lstat of its path (the gofer's FUSE
/// device), and leaves the placeholder.
mod gofer_view {
    macro_rules! with_gofer_view {
        ($($scenario:ident),* $(,)?) => {$(
            #[test]
            fn $scenario() {
                super::$scenario("sentry-gofer");
            }
        )*};
    }
    with_gofer_view!(bash_script, text_tools, python3_stdlib, gcc_compiles_and_runs, process_tools);
}

/// Runs `args` in a fresh Debian container on `platform`; returns stdout, asserting exit 0 and that
/// nothing leaked.
fn run(platform: &str, args: &[&str]) -> String {
    let mut moat = Moat::new();
    moat.global = match platform {
        "sentry-gofer" => vec!["--platform".into(), "sentry".into(), "--directfs=false".into()],
        _ => vec!["--platform".into(), platform.into()],
    };
    let b = debian::bundle(args);
    let id = unique_id(&format!("deb-{platform}"));
    let (code, out, err) = moat_e2e::run_fg(&moat, &b, &id);
    assert_eq!(code, 0, "{platform}: {args:?} exited {code}\nstderr: {err}\nstdout: {out}");
    assert_no_leaks(&moat, &id, b.path());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(debian::CACHE_DIR), "a mount of the shared rootfs leaked:\n{mounts}");
    out
}

/// The first line of `out` is the kernel release the program saw: the Sentry's under sentry (so a
/// silent fallback to native fails), the host's under native.
fn check_release<'a>(platform: &str, out: &'a str) -> &'a str {
    let (release, rest) = out.split_once('\n').unwrap_or((out, ""));
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    match platform {
        "sentry" | "sentry-gofer" => {
            assert!(release.contains("moat"), "sentry: release {release:?} is not the Sentry's")
        }
        _ => assert_eq!(release, host.trim_end(), "native: release"),
    }
    rest
}

const BASH_SCRIPT: &str = r#"
set -euo pipefail
uname -r
fact() { local n=$1; if (( n <= 1 )); then echo 1; else echo $(( n * $(fact $((n - 1))) )); fi; }
echo "fact=$(fact 10)"
echo "pipe=$(seq 1 100 | grep 7 | wc -l)"
{ echo to-out; echo to-err >&2; } > /tmp/o 2> /tmp/e
echo appended >> /tmp/o
cat /tmp/o /tmp/e
exec 3> /tmp/fd3; echo via-fd3 >&3; exec 3>&-; cat < /tmp/fd3
n=4
cat <<EOF
expanded $((n * n)) $(echo cmd)
EOF
cat <<'EOF'
literal $((n * n))
EOF
tr a-z A-Z <<< "shout"
x=outer; (x=inner; echo "sub=$x"; exit 3) || echo "sub-status=$?"; echo "parent=$x"
diff <(printf 'a\nb\n') <(printf 'a\nb\n') && echo same
arr=(one two three); echo "arr=${#arr[@]} ${arr[1]} ${arr[-1]}"
s=hello-world; echo "${s%-*} ${s#*-} ${s^^}"
declare -A m=([k]=v); echo "assoc=${m[k]}"
trap 'echo trapped-usr1' USR1
kill -USR1 $$
( trap 'echo sub-exit' EXIT; echo in-sub )
touch /usr/moat-probe 2>/dev/null && echo root-rw || echo root-ro
echo "$(hostname) $(id -u) $(whoami)"
set -m
sleep 100 &
pid=$!
jobs
[ "$(ps -o pgid= -p $pid)" -eq "$pid" ] && echo own-process-group
kill %1
# by pid: bash may already have reported the job and dropped %1 from its table (a race on Linux too)
wait $pid || echo "killed-status=$?"
sleep 0.1 & wait $!; echo "waited=$?"
trap 'echo bye' EXIT
"#;

fn bash_script(platform: &str) {
    let out = run(platform, &["bash", "-c", BASH_SCRIPT]);
    let rest = check_release(platform, &out);
    assert_eq!(
        rest,
        "fact=3628800\npipe=19\nto-out\nappended\nto-err\nvia-fd3\nexpanded 16 cmd\nliteral $((n * n))\nSHOUT\n\
         sub=inner\nsub-status=3\nparent=outer\nsame\narr=3 two three\nhello world HELLO-WORLD\nassoc=v\n\
         trapped-usr1\nin-sub\nsub-exit\nroot-ro\nmoat 0 root\n[1]+  Running                 sleep 100 &\n\
         own-process-group\nkilled-status=143\n\
         waited=0\nbye\n",
        "{platform}"
    );
}

const TEXT_TOOLS: &str = r#"
set -euo pipefail
uname -r
cd /tmp
mkdir -p work/a/b work/c
printf 'apple\nbanana\napple\ncherry\nbanana\napple\n' > work/a/fruits.txt
printf 'hello world\n' > work/a/b/hello.txt
seq 1 1000 > work/c/numbers.txt
ln -s ../a/fruits.txt work/c/link.txt
sort work/a/fruits.txt | uniq -c | sort -k1,1nr -k2
find work -name '*.txt' -type f | sort
find work -type l
sha256sum work/a/b/hello.txt
stat -c '%s %F' work/a/b/hello.txt
tar czf work.tgz work
tar tzf work.tgz | sort
mkdir out && tar xzf work.tgz -C out && diff -r work out/work && echo tar-roundtrip
gzip -k work/c/numbers.txt
gunzip -c work/c/numbers.txt.gz | cmp - work/c/numbers.txt && echo gunzip-same
gzip -t work/c/numbers.txt.gz && echo gzip-ok
sed -i 's/apple/APPLE/g; /cherry/d' work/a/fruits.txt
cat work/c/link.txt | tr '\n' ' '; echo
grep -c APPLE work/a/fruits.txt
grep -rl hello work
grep -E '^9{3}$' work/c/numbers.txt
find work -name '*.txt' -print0 | xargs -0 cat | wc -l
head -3 work/c/numbers.txt | paste -sd,
cut -d' ' -f2 work/a/b/hello.txt
date -u -d @86400 +%F
ps -o pid=,comm= -p 1
expr 6 \* 7
"#;

fn text_tools(platform: &str) {
    let out = run(platform, &["bash", "-c", TEXT_TOOLS]);
    assert_eq!(
        check_release(platform, &out),
        "      3 apple\n      2 banana\n      1 cherry\n\
         work/a/b/hello.txt\nwork/a/fruits.txt\nwork/c/numbers.txt\n\
         work/c/link.txt\n\
         a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447  work/a/b/hello.txt\n\
         12 regular file\n\
         work/\nwork/a/\nwork/a/b/\nwork/a/b/hello.txt\nwork/a/fruits.txt\nwork/c/\nwork/c/link.txt\nwork/c/numbers.txt\n\
         tar-roundtrip\ngunzip-same\ngzip-ok\n\
         APPLE banana APPLE banana APPLE \n\
         3\nwork/a/b/hello.txt\n999\n1011\n1,2,3\nworld\n1970-01-02\n      1 bash\n42\n",
        "{platform}"
    );
}

const PYTHON3_SCRIPT: &str = r#"
import json, multiprocessing, os, platform, socket, sqlite3, subprocess, tempfile, threading

print(platform.release())
lock = threading.Lock()
counter = 0
seen = set()
# all eight alive at once, so their idents are distinct
barrier = threading.Barrier(8)

def work(n):
    global counter
    barrier.wait()
    for _ in range(2000):
        with lock:
            counter += 1
    with lock:
        seen.add(threading.get_ident())

threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("counter", counter, "threads", len(seen))

echo = subprocess.run(["echo", "from", "echo"], capture_output=True, text=True, check=True)
print(echo.stdout.strip())
shell = subprocess.run("exit 5", shell=True)
print("shell exit", shell.returncode)
with tempfile.TemporaryDirectory() as d:
    print("tempdir in /tmp", d.startswith("/tmp/"))
    for name in ["b.txt", "a.txt"]:
        with open(os.path.join(d, name), "w") as f:
            f.write(name)
    print("ls", subprocess.run(["ls", d], capture_output=True, text=True, check=True).stdout.split())
    # a file opened for reading: /tmp is writable, the root is not, whichever fd asks
    with open(os.path.join(d, "a.txt")) as f, open("/etc/hostname") as g:
        ro = lambda s: bool(s.f_flag & os.ST_RDONLY)
        print("read-only", ro(os.fstatvfs(f.fileno())), ro(os.statvfs(d)), ro(os.fstatvfs(g.fileno())), ro(os.statvfs("/")))
    db = sqlite3.connect(os.path.join(d, "t.db"))
    db.execute("create table kv (k text primary key, v integer)")
    db.executemany("insert into kv values (?, ?)", [("x", 1), ("y", 2), ("z", 3)])
    db.commit()
    rows = db.execute("select k, v from kv where v >= 2 order by k").fetchall()
    total = db.execute("select sum(v) from kv").fetchone()[0]
    db.close()
    print("rows", rows, "sum", total)
with multiprocessing.Pool(2) as pool:
    print("abs", pool.map(abs, [-1, -2, -3]))
a, b = socket.socketpair()
a.sendall(b"ping")
print(b.recv(4).decode(), socket.gethostname())
with tempfile.NamedTemporaryFile("w+", suffix=".json") as f:
    json.dump({"rows": rows, "nested": {"ok": True, "n": None}}, f, sort_keys=True)
    f.seek(0)
    print(json.dumps(json.load(f), sort_keys=True))
"#;

fn python3_stdlib(platform: &str) {
    let out = run(platform, &["python3", "-c", PYTHON3_SCRIPT]);
    let rest = check_release(platform, &out);
    assert_eq!(
        rest,
        "counter 16000 threads 8\nfrom echo\nshell exit 5\ntempdir in /tmp True\nls ['a.txt', 'b.txt']\nread-only False False True True\n\
         rows [('y', 2), ('z', 3)] sum 6\n\
         abs [1, 2, 3]\nping moat\n{\"nested\": {\"n\": null, \"ok\": true}, \"rows\": [[\"y\", 2], [\"z\", 3]]}\n",
        "{platform}"
    );
}

const C_PROGRAM: &str = r#"
set -eu
cat > /tmp/prog.c <<'EOF'
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    struct utsname u;
    if (uname(&u) != 0) { perror("uname"); return 1; }
    printf("%s\n", u.release);
    int p[2];
    if (pipe(p) != 0) { perror("pipe"); return 1; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execlp("echo", "echo", "hello from exec", (char *)NULL);
        perror("execlp");
        _exit(127);
    }
    close(p[1]);
    char buf[256];
    size_t total = 0;
    ssize_t n;
    while ((n = read(p[0], buf + total, sizeof buf - 1 - total)) > 0) total += (size_t)n;
    buf[total] = '\0';
    close(p[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid) { perror("waitpid"); return 1; }
    printf("child said: %s", buf);
    printf("child exited: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    pid = fork();
    if (pid == 0) _exit(7);
    waitpid(pid, &st, 0);
    printf("second child: %d\n", WEXITSTATUS(st));
    long sum = 0;
    for (int i = 1; i <= 100; i++) sum += i;
    printf("sum %ld, %s\n", sum, strrchr("/usr/bin/gcc", '/') + 1);
    return 0;
}
EOF
gcc -O2 -Wall -Wextra -Werror -o /tmp/prog /tmp/prog.c
/tmp/prog
"#;

fn gcc_compiles_and_runs(platform: &str) {
    let out = run(platform, &["bash", "-c", C_PROGRAM]);
    assert_eq!(
        check_release(platform, &out),
        "child said: hello from exec\nchild exited: 0\nsecond child: 7\nsum 5050, gcc\n",
        "{platform}"
    );
}

/// procps and util-linux tools read /proc and /sys: under sentry they see the Sentry's.
const PROCESS_TOOLS: &str = r#"
set -euo pipefail
uname -r
# ps alone (a pipeline's other members may not have exec'd yet when it looks)
comms=$(ps -eo comm=); echo $comms | tr ' ' '\n' | sort | tr '\n' ' '; echo
top -b -n 1 | grep -c '^Tasks:'
free -m | grep -c '^Mem:'
uptime | grep -c 'load average'
sleep 30 & for i in $(seq 50); do pgrep -x sleep >/dev/null && { echo pgrep-ok; break; }; sleep 0.1; done; kill %1; wait || true
vmstat | grep -c procs
lscpu | grep -c '^CPU(s):'
findmnt -n -o FSTYPE /proc
findmnt -n -o FSTYPE /sys
df / | tail -n +2 | wc -l
[ "$(nproc)" -ge 1 ] && echo nproc-ok
python3 -c 'import os; print(os.cpu_count() >= 1, os.getloadavg()[0] >= 0)'
pmap $$ | tail -1 | grep -c total
"#;

fn process_tools(platform: &str) {
    let out = run(platform, &["bash", "-c", PROCESS_TOOLS]);
    assert_eq!(
        check_release(platform, &out),
        "bash ps \n1\n1\n1\npgrep-ok\n1\n1\nproc\nsysfs\n1\nnproc-ok\nTrue True\n1\n",
        "{platform}"
    );
}
