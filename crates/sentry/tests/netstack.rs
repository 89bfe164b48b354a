//! The netstack as a library, without a Sentry: sockets made, bound,
//! listening and connected through `Stack`, bytes through the app's ends
//! of their socketpairs, as a sandbox's program would see them.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use moat_sentry::net::addr::{Addr, Family};
use moat_sentry::net::stack::State;
use moat_sentry::net::Netstack;
use smoltcp::wire::IpAddress;

fn lo(port: u16) -> Addr {
    Addr { ip: Some(IpAddress::v4(127, 0, 0, 1)), port }
}

/// A TCP socket of the stack: the app's end and its key.
fn tcp(net: &Netstack) -> (std::os::fd::OwnedFd, u64) {
    let app = net.lock().socket(Family::V4, None, false).unwrap();
    let key = net.lock().find(&app).unwrap();
    (app, key)
}

/// A TCP socket listening on 127.0.0.1:`port` (0: any free one).
fn listening(net: &Netstack, port: u16) -> (std::os::fd::OwnedFd, u64) {
    let (app, key) = tcp(net);
    net.lock().bind(key, lo(port)).unwrap();
    net.lock().listen(key, 4).unwrap();
    (app, key)
}

/// Waits until `done` holds (the stack's thread works meanwhile).
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_connection_over_the_loopback_carries_bytes_both_ways_and_its_end() {
    let net = Netstack::loopback().unwrap();
    let (listener, lkey) = listening(&net, 0);
    let port = net.lock().name(lkey).unwrap().port;
    assert!(port >= 32768, "an ephemeral port: {port}");

    let (client, ckey) = tcp(&net);
    net.lock().connect(ckey, Some(lo(port))).unwrap();
    net.wake();
    until("connected", || matches!(net.lock().sock(ckey).map(|s| &s.state), Ok(State::Connected(_))));

    // the listening end is readable while a connection waits
    let mut ready = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&listener), nix::poll::PollFlags::POLLIN)];
    assert_eq!(nix::poll::poll(&mut ready, nix::poll::PollTimeout::from(5000u16)), Ok(1));
    let (server, peer) = net.lock().accept(lkey, &listener, false).unwrap().unwrap();
    assert_eq!(peer, net.lock().name(ckey).unwrap());
    assert!(net.lock().accept(lkey, &listener, false).unwrap().is_none(), "one connection, one accept");

    let (mut client, mut server) = (UnixStream::from(client), UnixStream::from(server));
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let big = vec![7u8; 300_000];
    let writer = std::thread::spawn(move || {
        client.write_all(&big).unwrap();
        client
    });
    let mut got = vec![0u8; 300_000];
    server.read_exact(&mut got).unwrap();
    assert!(got.iter().all(|&b| b == 7));
    let mut client = writer.join().unwrap();
    server.write_all(b"back").unwrap();
    let mut back = [0u8; 4];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"back");

    // the client's close is the server's end of file, and the other way
    drop(client);
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    drop(server);
    until("both sockets gone", || net.lock().sock(ckey).is_err());
}

#[test]
fn a_port_taken_is_refused_and_nobody_listening_refuses() {
    let net = Netstack::loopback().unwrap();
    let _a = listening(&net, 4000);
    let (_b, bkey) = tcp(&net);
    assert_eq!(net.lock().bind(bkey, lo(4000)), Err(nix::errno::Errno::EADDRINUSE));
    assert_eq!(
        net.lock().bind(bkey, Addr { ip: Some(IpAddress::v4(10, 0, 0, 1)), port: 1 }),
        Err(nix::errno::Errno::EADDRNOTAVAIL)
    );
    net.lock().connect(bkey, Some(lo(4001))).unwrap();
    net.wake();
    until("refused", || matches!(net.lock().sock(bkey).map(|s| &s.state), Ok(State::Failed)));
    assert_eq!(net.lock().sock(bkey).unwrap().error, Some(nix::errno::Errno::ECONNREFUSED));
}
