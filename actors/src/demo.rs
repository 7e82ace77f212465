//! `mcrd demo`: a throw-away three-namespace topology with a live stream
//! relayed through a real `mcrd supervisor` and its worker, and counters
//! printed every second. Everything it creates (namespaces, veth pairs, a
//! temporary directory, processes) is removed on exit, Ctrl-C or panic.
//!
//! ```text
//!  [src ns] demo-src 10.99.1.1 ── 10.99.1.2 demo-in [relay ns: mcrd] demo-out 10.99.2.1 ── 10.99.2.2 demo-dst [dst ns]
//!   mcrgen send → 239.1.1.1:5000          rule: demo-in 239.1.1.1:5000 → 239.2.2.2:6000 on demo-out        mcrgen recv
//! ```

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mcr::control::client::Client;
use mcr::control::{Request, StatsReport};
use mcr::gen::{RecvOpts, RecvReport, SendOpts};

#[derive(clap::Args, Debug)]
pub struct Opts {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Packets per second of the demo stream.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// UDP payload bytes.
    #[arg(long, default_value_t = 1000)]
    pub size: usize,
}

#[derive(clap::Args, Debug)]
pub struct PeerOpts {
    /// send or recv.
    pub role: String,
    #[arg(long)]
    pub group: Ipv4Addr,
    #[arg(long)]
    pub port: u16,
    #[arg(long)]
    pub interface: String,
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 1000)]
    pub size: usize,
}

/// Everything the demo made, undone on drop.
struct Topology {
    tag: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Topology {
    fn ns(&self, role: &str) -> String {
        format!("mcrdemo-{}-{role}", self.tag)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run `ip` (install iproute2): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    fn build(&self) -> Result<(), String> {
        let (src, relay, dst) = (self.ns("src"), self.ns("relay"), self.ns("dst"));
        for n in [&src, &relay, &dst] {
            self.ip(&["netns", "add", n])?;
            self.ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        self.ip(&[
            "-n", &src, "link", "add", "demo-src", "type", "veth", "peer", "name", "demo-in",
            "netns", &relay,
        ])?;
        self.ip(&[
            "-n", &relay, "link", "add", "demo-out", "type", "veth", "peer", "name", "demo-dst",
            "netns", &dst,
        ])?;
        for (n, dev, addr) in [
            (&src, "demo-src", "10.99.1.1/24"),
            (&relay, "demo-in", "10.99.1.2/24"),
            (&relay, "demo-out", "10.99.2.1/24"),
            (&dst, "demo-dst", "10.99.2.2/24"),
        ] {
            self.ip(&["-n", n, "addr", "add", addr, "dev", dev])?;
            self.ip(&["-n", n, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    fn exec(&self, role: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(role)])
            .arg(crate::self_exe());
        c
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let end = Instant::now() + Duration::from_secs(3);
        for c in &mut self.children {
            while Instant::now() < end {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for role in ["src", "relay", "dst"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn main(opts: Opts) -> ExitCode {
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcrd demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Opts) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "needs root: it creates network namespaces and veth pairs (try: sudo mcrd demo)".into(),
        );
    }
    if opts.size < mcr::gen::HEADER_LEN || opts.size > 1400 {
        return Err(format!(
            "--size must be {}..1400 bytes",
            mcr::gen::HEADER_LEN
        ));
    }
    let stop = mcr::gen::install_stop_handlers().map_err(|e| format!("signal handlers: {e}"))?;
    let tag = format!("{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("mcrdemo-{tag}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut topo = Topology {
        tag,
        dir: dir.clone(),
        children: Vec::new(),
    };
    println!(
        "mcrd demo: building namespaces {}, {}, {} ...",
        topo.ns("src"),
        topo.ns("relay"),
        topo.ns("dst")
    );
    topo.build()?;

    let config = dir.join("demo.json5");
    let socket = dir.join("control.sock");
    let log = dir.join("mcrd.log");
    std::fs::write(
        &config,
        "// Written by `mcrd demo`: relay the demo stream from demo-in to demo-out,\n\
         // translating 239.1.1.1:5000 to 239.2.2.2:6000.\n\
         {\n  rules: [{\n    name: \"demo\",\n    input: { interface: \"demo-in\", group: \"239.1.1.1\", port: 5000 },\n    \
         outputs: [{ interface: \"demo-out\", group: \"239.2.2.2\", port: 6000, ttl: 4 }],\n  }],\n}\n",
    )
    .map_err(|e| format!("writing {}: {e}", config.display()))?;
    let logf =
        std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let daemon = topo
        .exec("relay")
        .arg("supervisor")
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .env("MCR_STATS_INTERVAL_MS", "500")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .map_err(|e| format!("starting mcrd supervisor: {e}"))?;
    topo.children.push(daemon);
    let started = Instant::now();
    let mut client = loop {
        if let Ok(mut c) = Client::connect(&socket, Duration::from_secs(2)) {
            if c.request::<String>(&Request::Ping).is_ok() {
                break c;
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "mcrd did not come up within 10 s; its log:\n{tail}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "mcrd demo: mcrd supervisor running in {} (log: {})",
        topo.ns("relay"),
        log.display()
    );

    let mut recv = topo
        .exec("dst")
        .args([
            "demo-peer",
            "recv",
            "--group",
            "239.2.2.2",
            "--port",
            "6000",
            "--interface",
            "demo-dst",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the receiver: {e}"))?;
    let out = recv.stdout.take().ok_or("receiver has no stdout")?;
    topo.children.push(recv);
    let (tx, rx) = mpsc::channel::<RecvReport>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(r) = serde_json::from_str::<RecvReport>(&line) {
                if tx.send(r).is_err() {
                    return;
                }
            }
        }
    });
    // The receiver prints one report as soon as it has joined.
    let _ = rx.recv_timeout(Duration::from_secs(5));
    let send = topo
        .exec("src")
        .args([
            "demo-peer",
            "send",
            "--group",
            "239.1.1.1",
            "--port",
            "5000",
            "--interface",
            "demo-src",
        ])
        .args([
            "--rate",
            &opts.rate.to_string(),
            "--size",
            &opts.size.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the sender: {e}"))?;
    topo.children.push(send);
    println!(
        "mcrd demo: streaming {} pps of {}-byte datagrams: 239.1.1.1:5000 (demo-src) -> mcrd -> 239.2.2.2:6000 (demo-dst). Ctrl-C stops.",
        opts.rate, opts.size
    );
    println!(
        "{:>6}  {:>10}  {:>10}  {:>9}  {:>10}  {:>7}  {:>9}  {:>9}",
        "time", "relayed", "relay pps", "received", "recv pps", "lost", "p50 µs", "p99 µs"
    );
    let t0 = Instant::now();
    let mut last: Option<RecvReport> = None;
    let mut next = t0 + Duration::from_secs(1);
    while !stop.load(Ordering::SeqCst) {
        if opts
            .duration
            .is_some_and(|d| t0.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        while let Ok(r) = rx.try_recv() {
            last = Some(r);
        }
        if Instant::now() >= next {
            next += Duration::from_secs(1);
            let stats: Option<StatsReport> = client.request(&Request::Stats).ok();
            let (relayed, rpps) = stats
                .as_ref()
                .and_then(|s| s.rules.first())
                .map(|r| (r.packets, r.pps))
                .unwrap_or((0, 0.0));
            let (got, gpps, lost, p50, p99) = last
                .as_ref()
                .map(|r| {
                    (
                        r.unique,
                        r.rate_pps,
                        r.lost,
                        r.latency_us.p50,
                        r.latency_us.p99,
                    )
                })
                .unwrap_or((0, 0.0, 0, 0.0, 0.0));
            println!(
                "{:>5.0}s  {relayed:>10}  {rpps:>10.0}  {got:>9}  {gpps:>10.0}  {lost:>7}  {p50:>9.1}  {p99:>9.1}",
                t0.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("mcrd demo: stopping and removing the namespaces");
    drop(topo);
    Ok(())
}

/// The demo's sender and receiver, run inside their namespaces.
pub fn peer_main(o: PeerOpts) -> ExitCode {
    let stop = match mcr::gen::install_stop_handlers() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo peer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = match o.role.as_str() {
        "send" => {
            let mut s = SendOpts::new(o.group, o.port);
            s.rate = o.rate;
            s.size = o.size;
            s.interface = Some(o.interface);
            s.batch = 8;
            mcr::gen::send(&s, stop).map(|_| ())
        }
        "recv" => {
            let mut r = RecvOpts::new(o.group, o.port);
            r.interface = Some(o.interface);
            let print = |rep: &RecvReport| {
                if let Ok(s) = serde_json::to_string(rep) {
                    println!("{s}");
                }
            };
            mcr::gen::recv(
                &r,
                stop,
                &mut || print(&RecvReport::default()),
                &mut |rep| print(rep),
            )
            .map(|_| ())
        }
        other => {
            eprintln!("demo peer: unknown role {other}");
            return ExitCode::FAILURE;
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo peer ({}): {e}", o.role);
            ExitCode::FAILURE
        }
    }
}
