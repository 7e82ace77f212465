//! `mcrgen`: send and receive mcrgen test traffic (see `mcr::gen`).
//!
//! A thin CLI: argument checking, signal handling and printing. The
//! sending, receiving and accounting are the library's.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use mcr::gen::{
    self, RecvOpts, RecvReport, SendOpts, SendReport, HEADER_LEN, MAX_BATCH, MAX_PAYLOAD,
};

/// A line on stderr. `eprintln!` panics when stderr is a closed pipe;
/// then there is no one left to tell.
macro_rules! note {
    ($($a:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($a)*);
    }};
}

/// A line appended to the `String` `$s`.
macro_rules! outln {
    ($s:ident, $($a:tt)*) => {{
        $s.push_str(&format!($($a)*));
        $s.push('\n');
    }};
}

#[derive(Parser)]
#[command(
    name = "mcrgen",
    version,
    about = "Send and receive MCR test traffic",
    long_about = "Send and receive MCR test traffic.\n\n\
        `mcrgen send` emits UDP datagrams carrying a stream id, a sequence \
        number and a send timestamp; `mcrgen recv` counts them and reports \
        loss, duplicates, reordering and one-way latency (sender and \
        receiver must share a clock, e.g. network namespaces on one host).\n\n\
        Example:\n  \
        mcrgen recv --group 239.1.1.1 --port 5001 --interface veth1 --idle-timeout 1\n  \
        mcrgen send --group 239.1.1.1 --port 5001 --interface veth0 --rate 10000 --count 50000"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send a paced (or flat-out) stream of test datagrams.
    Send(SendArgs),
    /// Receive test datagrams and report loss and latency.
    Recv(RecvArgs),
    /// Put raw IPv4 packets (hex, no link header) on an interface, e.g. to
    /// check how a relay treats fragments or malformed headers.
    Inject(InjectArgs),
    /// Print mcrgen's man page (roff) to stdout.
    #[command(hide = true)]
    Man,
}

#[derive(Args)]
struct InjectArgs {
    /// Interface to send on.
    #[arg(long)]
    interface: String,
    /// Each packet as hex digits (whitespace ignored); repeat for more.
    #[arg(long = "packet", value_name = "HEX", required = true)]
    packets: Vec<String>,
    /// Send the list this many times.
    #[arg(long, default_value_t = 1)]
    count: u32,
}

fn run_inject(a: InjectArgs) -> anyhow::Result<()> {
    let mut pkts = Vec::new();
    for (i, h) in a.packets.iter().enumerate() {
        let digits: String = h.chars().filter(|c| !c.is_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            anyhow::bail!("--packet #{}: odd number of hex digits", i + 1);
        }
        let mut p = Vec::with_capacity(digits.len() / 2);
        for k in (0..digits.len()).step_by(2) {
            let b = u8::from_str_radix(&digits[k..k + 2], 16).map_err(|_| {
                anyhow::anyhow!("--packet #{}: {:?} is not hex", i + 1, &digits[k..k + 2])
            })?;
            p.push(b);
        }
        pkts.push(p);
    }
    let mut total = 0;
    for _ in 0..a.count {
        total += gen::inject_ipv4(&a.interface, &pkts)
            .with_context(|| format!("injecting on {}", a.interface))?;
    }
    note!("mcrgen inject: {total} packets on {}", a.interface);
    Ok(())
}

#[derive(Args)]
struct SendArgs {
    /// Destination: a multicast group, or a unicast or broadcast address.
    #[arg(long, value_name = "ADDR")]
    group: Ipv4Addr,

    /// Destination UDP port.
    #[arg(long, allow_negative_numbers = true, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,

    /// Packets per second; 0 sends as fast as the kernel accepts.
    #[arg(long, allow_negative_numbers = true, value_name = "PPS", default_value = "0", value_parser = parse_rate)]
    rate: f64,

    /// UDP payload size in bytes (at least the 28-byte mcrgen header).
    #[arg(long, allow_negative_numbers = true, value_name = "BYTES", default_value = "1024", value_parser = parse_size)]
    size: usize,

    /// Stop after sending this many packets.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_name = "N",
        conflicts_with = "duration"
    )]
    count: Option<u64>,

    /// Stop after this many seconds (fractions allowed).
    #[arg(long, allow_negative_numbers = true, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,

    /// Source address to bind to.
    #[arg(long, value_name = "IP")]
    source: Option<Ipv4Addr>,

    /// Egress interface (SO_BINDTODEVICE, and IP_MULTICAST_IF for multicast).
    #[arg(long, value_name = "NAME")]
    interface: Option<String>,

    /// IP TTL [default: 1 for multicast, 64 otherwise].
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    ttl: Option<u8>,

    /// Most packets handed to the kernel per sendmmsg call.
    #[arg(long, allow_negative_numbers = true, value_name = "N", default_value = "32", value_parser = parse_batch)]
    batch: usize,

    /// Stream id written into every packet, to tell senders apart.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_name = "N",
        default_value = "0"
    )]
    stream_id: u32,

    /// Loop multicast back to sockets on this host (IP_MULTICAST_LOOP).
    #[arg(long = "loop")]
    multicast_loop: bool,

    /// Write whole Ethernet frames to a packet socket on --interface
    /// instead of sending through UDP (no UDP/IP output per datagram, UDP
    /// checksum 0): a much faster sender for benchmarks. Needs CAP_NET_RAW.
    #[arg(long, requires = "interface")]
    raw: bool,

    /// Pace in bursts: sleep this many microseconds whenever nothing is
    /// due instead of spinning to each packet's exact time (saves a core;
    /// sends rate × tick packets at once). 0 = precise pacing.
    #[arg(long, value_name = "US", default_value = "0")]
    tick_us: u64,

    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RecvArgs {
    /// Multicast group to join, or a unicast address (or 0.0.0.0) to bind.
    #[arg(long, value_name = "ADDR")]
    group: Ipv4Addr,

    /// UDP port to listen on (0: any free port, shown in the listening line).
    #[arg(long, allow_negative_numbers = true, value_name = "PORT")]
    port: u16,

    /// Join the group on this interface (for unicast: SO_BINDTODEVICE).
    #[arg(long, value_name = "NAME")]
    interface: Option<String>,

    /// Stop after this many seconds (fractions allowed).
    #[arg(long, allow_negative_numbers = true, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,

    /// Stop after receiving this many test datagrams.
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    count: Option<u64>,

    /// Stop this many seconds after the last test datagram (once one arrived).
    #[arg(long, allow_negative_numbers = true, value_name = "SECS", value_parser = parse_secs)]
    idle_timeout: Option<Duration>,

    /// The sender's --count: loss is counted against sequence numbers 0..N.
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    expect: Option<u64>,

    /// Socket receive buffer to ask for, in bytes (0: system default).
    #[arg(long, allow_negative_numbers = true, value_name = "BYTES", default_value_t = 8 << 20)]
    rcvbuf: usize,

    /// Check every payload byte, not only both ends of the pattern.
    #[arg(long)]
    verify_full: bool,

    /// Most datagrams taken from the kernel per recvmmsg call.
    #[arg(long, allow_negative_numbers = true, value_name = "N", default_value = "64", value_parser = parse_batch)]
    batch: usize,

    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,

    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err("must be a number >= 0 (0 = as fast as possible)".into());
    }
    Ok(v)
}

fn parse_size(s: &str) -> Result<usize, String> {
    let v: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count"))?;
    if !(HEADER_LEN..=MAX_PAYLOAD).contains(&v) {
        return Err(format!(
            "must be between {HEADER_LEN} (the mcrgen header) and {MAX_PAYLOAD}"
        ));
    }
    Ok(v)
}

fn parse_batch(s: &str) -> Result<usize, String> {
    let v: usize = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(1..=MAX_BATCH).contains(&v) {
        return Err(format!("must be between 1 and {MAX_BATCH}"));
    }
    Ok(v)
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err("must be a positive number of seconds".into());
    }
    Duration::try_from_secs_f64(v).map_err(|e| e.to_string())
}

fn check_interface(name: &Option<String>) -> Result<()> {
    if let Some(name) = name {
        gen::interface_index(name).with_context(|| format!("--interface {name}"))?;
    }
    Ok(())
}

/// The man page, for the install steps (`mcrgen man > mcrgen.1`).
fn print_man() -> Result<()> {
    use std::io::Write;
    let mut buf = Vec::new();
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut buf)?;
    let mut o = std::io::stdout().lock();
    match o.write_all(&buf).and_then(|()| o.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Man) {
        return match print_man() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                note!("mcrgen: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let result = gen::install_stop_handlers()
        .context("cannot install signal handlers")
        .and_then(|stop| match cli.command {
            Command::Send(a) => run_send(a, stop),
            Command::Recv(a) => run_recv(a, stop),
            Command::Inject(a) => run_inject(a),
            Command::Man => print_man(),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("mcrgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_send(a: SendArgs, stop: &AtomicBool) -> Result<()> {
    check_interface(&a.interface)?;
    let mut o = SendOpts::new(a.group, a.port);
    o.rate = a.rate;
    o.size = a.size;
    o.count = a.count;
    o.duration = a.duration;
    o.source = a.source;
    o.interface = a.interface;
    o.tick = (a.tick_us > 0).then(|| std::time::Duration::from_micros(a.tick_us));
    if let Some(ttl) = a.ttl {
        o.ttl = ttl;
    }
    o.batch = a.batch;
    o.stream_id = a.stream_id;
    o.multicast_loop = a.multicast_loop;
    o.raw = a.raw;
    let report =
        gen::send(&o, stop).with_context(|| format!("sending to {}:{}", a.group, a.port))?;
    if a.json {
        print_json(&report)?;
    } else {
        emit(&send_table(&o, &report)).context("writing the summary")?;
    }
    // Some refusals are a result worth reporting; all of them mean the
    // run measured nothing, which a script must not mistake for success.
    if report.sent == 0 && report.errors > 0 {
        anyhow::bail!(
            "no packet could be sent to {}:{}: {}",
            a.group,
            a.port,
            report.last_error.as_deref().unwrap_or("unknown error")
        );
    }
    Ok(())
}

fn run_recv(a: RecvArgs, stop: &AtomicBool) -> Result<()> {
    check_interface(&a.interface)?;
    let mut o = RecvOpts::new(a.group, a.port);
    o.interface = a.interface;
    o.duration = a.duration;
    o.count = a.count;
    o.idle_timeout = a.idle_timeout;
    o.expect = a.expect;
    o.rcvbuf = a.rcvbuf;
    o.verify_full = a.verify_full;
    o.batch = a.batch;

    let mut rx =
        gen::Receiver::open(&o).with_context(|| format!("listening on {}:{}", a.group, a.port))?;
    note!("mcrgen recv: listening on {}", rx.local_addr());

    let quiet = a.quiet;
    let mut prev = (Duration::ZERO, 0u64);
    let mut progress = |r: &RecvReport| {
        if quiet {
            return;
        }
        let dt = (r.elapsed - prev.0).as_secs_f64();
        let pps = if dt > 0.0 {
            (r.received - prev.1) as f64 / dt
        } else {
            0.0
        };
        prev = (r.elapsed, r.received);
        note!(
            "mcrgen recv: {:6.1}s received {} ({:.0} pps) lost {} dup {} reord {} foreign {} \
             corrupt {} p99 {:.1}us",
            r.elapsed.as_secs_f64(),
            r.received,
            pps,
            r.lost,
            r.duplicates,
            r.reordered,
            r.foreign,
            r.corrupt,
            r.latency_us.p99
        );
    };
    let report = rx
        .run(stop, &mut progress)
        .with_context(|| format!("receiving on {}", rx.local_addr()))?;
    if a.json {
        print_json(&report)
    } else {
        emit(&recv_table(&report)).context("writing the summary")
    }
}

fn print_json<T: serde::Serialize>(report: &T) -> Result<()> {
    let mut s = serde_json::to_string(report).context("writing the JSON summary")?;
    s.push('\n');
    emit(&s).context("writing the JSON summary")
}

/// Write `s` to stdout. `println!` would panic when the reader has gone
/// (`mcrgen ... | head -1`); a reader that stops early is no failure.
fn emit(s: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

fn mbit(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 * 8.0 / secs / 1e6
    } else {
        0.0
    }
}

fn send_table(o: &SendOpts, r: &SendReport) -> String {
    let mut s = String::new();
    let secs = r.elapsed.as_secs_f64();
    outln!(s, "mcrgen send summary ({}:{})", o.group, o.port);
    outln!(s, "  sent          {} packets of {} bytes", r.sent, o.size);
    outln!(s, "  errors        {}", r.errors);
    if let Some(e) = &r.last_error {
        outln!(s, "  last error    {e}");
    }
    outln!(s, "  bytes         {}", r.bytes);
    outln!(s, "  elapsed       {secs:.3} s");
    outln!(
        s,
        "  rate          {:.0} pps ({:.1} Mbit/s payload)",
        r.achieved_pps,
        mbit(r.bytes, secs)
    );
    if r.sent > 0 {
        outln!(s, "  seq           {}..={}", r.first_seq, r.last_seq);
    }
    s
}

fn recv_table(r: &RecvReport) -> String {
    let mut s = String::new();
    let secs = r.elapsed.as_secs_f64();
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    outln!(s, "mcrgen recv summary");
    outln!(s, "  received      {}", r.received);
    outln!(s, "  unique        {}", r.unique);
    outln!(s, "  lost          {} ({:.3} %)", r.lost, r.loss_pct);
    outln!(s, "  duplicates    {}", r.duplicates);
    outln!(s, "  reordered     {}", r.reordered);
    outln!(s, "  corrupt       {}", r.corrupt);
    outln!(s, "  foreign       {}", r.foreign);
    outln!(s, "  socket drops  {}", r.socket_drops);
    outln!(s, "  longest gap   {:.1} ms", r.max_gap_us / 1000.0);
    outln!(s, "  bytes         {}", r.bytes);
    outln!(
        s,
        "  seq           {}..={}",
        opt(r.first_seq),
        opt(r.last_seq)
    );
    outln!(s, "  streams       {}", r.streams);
    outln!(s, "  elapsed       {secs:.3} s");
    outln!(s, "  rate          {:.0} pps", r.rate_pps);
    let l = &r.latency_us;
    if l.samples == 0 {
        outln!(s, "  latency       -");
    } else {
        outln!(
            s,
            "  latency (us)  min {:.1}  mean {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  \
             p99.9 {:.1}  max {:.1}{}",
            l.min,
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            if r.kernel_timestamps {
                ""
            } else {
                "  (user-space receive time)"
            }
        );
    }
    if r.streams > 1 {
        for st in &r.per_stream {
            outln!(
                s,
                "  stream {:<6} unique {} lost {} dup {} reord {}",
                st.stream_id,
                st.unique,
                st.lost,
                st.duplicates,
                st.reordered
            );
        }
    }
    s
}
