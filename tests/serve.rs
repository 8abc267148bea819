//! `sluice serve` as a process: what idle and slow-header connections cost
//! it, and SIGTERM ending it within the shutdown deadline whatever its
//! clients are doing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `sluice serve` on 127.0.0.1:0 with these variables, and its address.
fn serve(envs: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(["--database", "sqlite::memory:"])
        .envs(envs.iter().copied())
        .env("SLUICE_LOG", "warn")
        .env_remove("SLUICE_API_KEYS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    stdout.read_line(&mut banner).unwrap();
    let addr = banner
        .trim()
        .rsplit("http://")
        .next()
        .unwrap_or_default()
        .to_string();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, addr)
}

/// `GET /healthz` on a fresh connection answers 200 within a second.
fn healthz_within_a_second(addr: &str) {
    let started = Instant::now();
    let mut probe = TcpStream::connect(addr).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    probe.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// The resident set size of process `pid` in bytes (Linux).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Waits until the server has closed `stream` (EOF or a reset).
fn closed_by_server(stream: &mut TcpStream, deadline: Instant) {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the server kept a connection open");
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the server kept a connection open")
            }
            Err(_) => return,
        }
    }
}

/// 2,000 idle sockets and 500 connections holding 30 KB of a head each cost
/// the server less than 64 MiB; /healthz answers within a second meanwhile;
/// the header timeout closes them all.
#[cfg(target_os = "linux")]
#[test]
fn idle_and_slow_header_connections_cost_bounded_memory() {
    const MIB: u64 = 1024 * 1024;
    let open_files = sluice_http::raise_open_files_limit().unwrap_or(1024);
    let room = usize::try_from(open_files.saturating_sub(256)).unwrap_or(usize::MAX);
    let (idle_count, slow_count) = (2_000.min(room * 4 / 5), 500.min(room / 5));
    let (mut child, addr) = serve(&[("SLUICE_HEADER_TIMEOUT_MS", "3000")]);
    healthz_within_a_second(&addr);
    // The web app's assets are compressed once, in the background, at start;
    // the first compressed answer waits for that, so it is done (and its
    // memory counted) before the connections are measured.
    let mut page = TcpStream::connect(&addr).unwrap();
    page.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: br\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = Vec::new();
    page.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "the page answers");
    let before = rss_bytes(child.id()).unwrap();
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..30 {
        head.push_str(&format!("X-Pad-{i}: {}\r\n", "a".repeat(1000)));
    }
    let mut held = Vec::with_capacity(idle_count + slow_count);
    for _ in 0..idle_count {
        held.push(TcpStream::connect(&addr).unwrap());
    }
    for _ in 0..slow_count {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    healthz_within_a_second(&addr);
    let after = rss_bytes(child.id()).unwrap();
    let grown = after.saturating_sub(before);
    assert!(
        grown < 64 * MIB,
        "{idle_count} idle and {slow_count} slow-header connections took {} MiB ({} to {} MiB)",
        grown / MIB,
        before / MIB,
        after / MIB
    );
    let deadline = Instant::now() + Duration::from_secs(6);
    for stream in &mut held {
        closed_by_server(stream, deadline);
    }
    healthz_within_a_second(&addr);
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(unix)]
#[test]
fn sigterm_completes_within_the_shutdown_deadline() {
    let (mut child, addr) = serve(&[
        ("SLUICE_SHUTDOWN_TIMEOUT_MS", "1000"),
        ("SLUICE_BODY_TIMEOUT_MS", "60000"),
    ]);

    // One client holds half a head, one an upload that would take a minute.
    let mut half_head = TcpStream::connect(&addr).unwrap();
    half_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut upload = TcpStream::connect(&addr).unwrap();
    upload
        .write_all(
            b"POST /v1/api-tools/sliding/chat-messages/HCX-003 HTTP/1.1\r\n\
              Host: x\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    healthz_within_a_second(&addr);
    std::thread::sleep(Duration::from_millis(100));

    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("sluice serve still runs 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_millis(2500),
        "SIGTERM took {took:?} with a 1 s shutdown deadline"
    );
}
