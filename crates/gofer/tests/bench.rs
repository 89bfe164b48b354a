//! Round-trip benchmark of the client against the server over a socketpair, with and without fd
//! donation. Ignored by default; run it optimized:
//!
//!     cargo test --release -p moat-gofer --test bench -- --ignored --nocapture

mod common;

use std::os::unix::fs::FileExt;
use std::time::Instant;

use common::{names, put, serve};
use moat_p9::consts::{oflags, GETATTR_BASIC};

const N: u32 = 20_000;

fn measure(label: &str, mut op: impl FnMut()) {
    for _ in 0..N / 10 {
        op();
    }
    let t = Instant::now();
    for _ in 0..N {
        op();
    }
    let ns = t.elapsed().as_nanos() / u128::from(N);
    println!("{label:<52} {ns:>8} ns/op");
}

/// The floor: a 64-byte ping-pong between two threads over a socketpair.
fn socketpair_floor() {
    use std::io::{Read, Write};
    let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while b.read_exact(&mut buf).is_ok() {
            b.write_all(&buf).unwrap();
        }
    });
    let mut buf = [0u8; 64];
    measure("raw socketpair ping-pong, 64 B (floor)", || {
        a.write_all(&buf).unwrap();
        a.read_exact(&mut buf).unwrap();
    });
    drop(a);
    echo.join().unwrap();
}

#[test]
#[ignore]
fn round_trips() {
    socketpair_floor();
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "usr/lib/file", &vec![7u8; 64 * 1024]);
    let path = names("usr/lib/file");
    for donate in [false, true] {
        let s = serve(dir.path(), donate, |c| {
            c.workers = std::env::var("W").ok().and_then(|w| w.parse().ok()).unwrap_or(4)
        });
        let c = s.client();
        assert_eq!(c.fd_donation(), donate);
        let root = c.attach("root", "", 0).unwrap();
        let tag = if donate { "fd donation" } else { "9P only" };
        let mut buf = vec![0u8; 4096];

        measure(&format!("walk(3)+getattr+clunk [{tag}]"), || {
            let f = root.walk(&path).unwrap();
            f.getattr(GETATTR_BASIC).unwrap();
        });
        measure(&format!("walk(3)+lopen+read 4KiB+clunk [{tag}]"), || {
            let f = root.walk(&path).unwrap();
            let o = f.open(oflags::RDONLY).unwrap();
            let n = match o.fd {
                Some(fd) => std::fs::File::from(fd).read_at(&mut buf, 0).unwrap(),
                None => f.read(0, &mut buf).unwrap(),
            };
            assert_eq!(n, 4096);
        });
        let f = root.walk(&path).unwrap();
        let o = f.open(oflags::RDONLY).unwrap();
        let file = o.fd.map(std::fs::File::from);
        let mut off = 0u64;
        measure(&format!("read 4KiB from an open file [{tag}]"), || {
            let n = match &file {
                Some(file) => file.read_at(&mut buf, off).unwrap(),
                None => f.read(off, &mut buf).unwrap(),
            };
            assert_eq!(n, 4096);
            off = (off + 4096) % (60 * 1024);
        });
        measure(&format!("getattr on a held fid [{tag}]"), || {
            f.getattr(GETATTR_BASIC).unwrap();
        });
    }
}
