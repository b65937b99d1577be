//! `ignis-bench`: runs one scenario against running servers and prints one JSON line.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ignis_bench::chat::{self, ChatSetup};
use ignis_bench::fleet::Target;
use ignis_bench::scale::{self, HoldPlan, PostStreams};
use ignis_bench::scenario::{self, ScenarioError, Setup};

#[derive(Parser)]
#[command(
    version,
    about = "Load generator for Socket.IO servers following bench/CONTRACT.md"
)]
struct Cli {
    /// Server address (repeat for a cluster: clients are spread, posts go to the first).
    #[arg(long, default_value = "127.0.0.1:3000")]
    target: Vec<SocketAddr>,
    /// Socket.IO path.
    #[arg(long, default_value = "/io/")]
    path: String,
    /// Server pid (repeat for a cluster), for CPU and RSS.
    #[arg(long, required = true)]
    server_pid: Vec<u32>,
    /// Name of the peer in the report.
    #[arg(long, default_value = "ignis")]
    label: String,
    /// Event-loop threads of the load generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Source addresses 127.0.0.1..N used in turn (each has its own ephemeral port range).
    #[arg(long, default_value_t = 1)]
    source_ips: u8,
    #[arg(long, default_value = "/api/socket/broadcast")]
    broadcast_path: String,
    /// Room send path; `{room}` is replaced by the room name.
    #[arg(long, default_value = "/api/socket/room/{room}/send")]
    room_path: String,
    /// Where REST posts go [default: the first target].
    #[arg(long)]
    rest: Option<SocketAddr>,
    /// API key sent as `X-API-Key` with every REST call.
    #[arg(long)]
    api_key: Option<String>,
    /// Concurrent REST posters (at least one per 150 posts/s of the scenario's rate).
    #[arg(long, default_value_t = 8)]
    posters: usize,
    /// Seconds to wait for all clients to authenticate.
    #[arg(long, default_value_t = 60)]
    connect_timeout: u64,
    /// Chat scenarios: the file of `id<TAB>token` lines of the users `chat-users` signed up.
    #[arg(long, default_value = "chat-users.tsv")]
    users_file: std::path::PathBuf,
    /// Chat scenarios: the database the chat runs on, for the report.
    #[arg(long, default_value = "sqlite")]
    database: String,
    #[command(subcommand)]
    scenario: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Server(Scenario),
    #[command(flatten)]
    Chat(ChatScenario),
    #[command(flatten)]
    Scale(ScaleScenario),
}

#[derive(Subcommand)]
enum Scenario {
    /// N clients connect and authenticate: time, server CPU and RSS per connection.
    Connect {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
    },
    /// C clients emit `echo` with an ack in a closed loop.
    Echo {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// N clients receive REST broadcasts sent at a fixed rate.
    Broadcast {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Rooms of the given sizes; REST room sends at a fixed rate, to each room in turn.
    Rooms {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, value_delimiter = ',', default_value = "10,25,50,100")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Broadcast rates in turn until one is not sustained, then halve the gap between the last
    /// rate sustained and the first not, `--refine` times.
    Sweep {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "25,50,100,200,400,800,1200,1600,2400,3200,4800,6400,9600,12800"
        )]
        rates: Vec<f64>,
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        #[arg(long, default_value_t = 3)]
        refine: u32,
    },
    /// N clients receive a numbered stream of broadcasts while each connection is cut (reset)
    /// around every `--cut-every-ms` and reconnects at once: delivery per client.
    Jitter {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Mean time between two cuts of one connection (each between half and 1.5 times this).
        #[arg(long, default_value_t = 15_000)]
        cut_every_ms: u64,
        /// Broadcasts per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Reconnect with `{pid, offset}` as socket.io-client does with connection state
        /// recovery (the server needs it on: `--recovery-max-disconnection-ms`).
        #[arg(long)]
        recovery: bool,
        /// Milliseconds a cut client waits before it reconnects (socket.io-client waits 0.5 to
        /// 1.5 s by default).
        #[arg(long, default_value_t = 0)]
        reconnect_after_ms: u64,
        /// Seconds after the last broadcast for clients to come back and receive what is due.
        #[arg(long, default_value_t = 10.0)]
        drain: f64,
    },
    /// Clients that come and go under steady broadcasts and room sends; the server's RSS and
    /// open descriptors sampled, and whether they stayed flat.
    Soak {
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Mean lifetime of a client in seconds (each between half and 1.5 times this).
        #[arg(long, default_value_t = 60.0)]
        lifetime: f64,
        /// Mean seconds between two `echo` of one client.
        #[arg(long, default_value_t = 5.0)]
        echo_every: f64,
        /// REST posts per second: broadcasts and room sends in turn.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Rooms clients join from (`soak-0..`).
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        #[arg(long, default_value_t = 3)]
        rooms_per_client: usize,
        /// Seconds between two samples of the server.
        #[arg(long, default_value_t = 60.0)]
        sample_secs: f64,
    },
}

/// The scale benchmark (issue 17), split over processes: see `scripts/bench-scale.sh`.
#[derive(Subcommand)]
enum ScaleScenario {
    /// Holds clients `--first..--first+--count` of `--total`, spread over the targets,
    /// authenticated and in rooms of `--room-size`; counts the deliveries between the poster's
    /// `go` and `done` files in `--control`, and prints its report.
    #[command(name = "scale-hold")]
    Hold {
        #[arg(long)]
        total: usize,
        #[arg(long, default_value_t = 0)]
        first: usize,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 1000)]
        room_size: usize,
        /// The JWT clients send as the CONNECT's `auth.token` (or env `IGNIS_BENCH_TOKEN`).
        /// A flag shows in `ps`: prefer the environment variable.
        #[arg(long)]
        token: Option<String>,
        /// The directory the holders and the poster meet in.
        #[arg(long)]
        control: std::path::PathBuf,
        /// Seconds after `done` for the last deliveries to arrive.
        #[arg(long, default_value_t = 20.0)]
        drain: f64,
        /// Seconds to wait for `go`, then for `done`.
        #[arg(long, default_value_t = 3600.0)]
        max_wait: f64,
    },
    /// Writes `go` in `--control`, posts broadcasts and room sends (round the rooms
    /// `scale-0..`) at once for `--seconds`, writes `done` with the counts.
    #[command(name = "scale-post")]
    Post {
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        #[arg(long, default_value_t = 1.0)]
        broadcast_rate: f64,
        #[arg(long, default_value_t = 10.0)]
        room_rate: f64,
        #[arg(long)]
        rooms: usize,
        #[arg(long)]
        control: std::path::PathBuf,
    },
}

/// The chat scenarios (issue 15), against `ignis-chat`: `--target` its address, `--path /io/`.
#[derive(Subcommand)]
enum ChatScenario {
    /// Signs users up through the REST API until the users file holds `--count`.
    #[command(name = "chat-users")]
    Users {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Sign-ups in flight at once (the chat hashes 4 passwords at a time).
        #[arg(long, default_value_t = 8)]
        parallel: usize,
    },
    /// A room of `--members`; `--senders` of them send at rising total rates, each step
    /// `--seconds` long, until one is not sustained (nothing lost, doubled, reordered or
    /// refused, every accepted message in the database, on schedule), then `--refine` halvings.
    #[command(name = "chat-throughput")]
    Throughput {
        #[arg(long, default_value_t = 100)]
        members: usize,
        #[arg(long, default_value_t = 99)]
        senders: usize,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000,2000,4000,6000,8000,12000,16000"
        )]
        rates: Vec<f64>,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long, default_value_t = 2)]
        refine: u32,
    },
    /// A room of `--members`; `--rate` messages per second from `--senders` of them: latency
    /// from `message:send` to each member's `message:new`.
    #[command(name = "chat-latency")]
    Latency {
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 100)]
        senders: usize,
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// `--clients` users connect, authenticate and join rooms of `--room-size`: the chat's RSS
    /// growth per idle user.
    #[command(name = "chat-idle")]
    Idle {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        room_size: usize,
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
    },
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.1, 600.0))
}

/// A duration for the long scenarios: up to a day.
fn long_seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.1, 86_400.0))
}

fn run_scale(setup: &Setup, scale: ScaleScenario) -> Result<serde_json::Value, ScenarioError> {
    match scale {
        ScaleScenario::Hold {
            total,
            first,
            count,
            room_size,
            token,
            control,
            drain,
            max_wait,
        } => scale::hold(
            setup,
            &HoldPlan {
                total,
                first,
                count,
                room_size,
                token: token
                    .or_else(|| std::env::var("IGNIS_BENCH_TOKEN").ok())
                    .map(Into::into),
                control,
                drain: seconds(drain),
                max_wait: long_seconds(max_wait),
            },
        ),
        ScaleScenario::Post {
            seconds: s,
            broadcast_rate,
            room_rate,
            rooms,
            control,
        } => scale::post(
            setup,
            &PostStreams {
                duration: long_seconds(s),
                broadcast_rate,
                room_rate,
                rooms,
                control,
            },
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = ignis_bench::raise_fd_limit() {
        eprintln!("ignis-bench: cannot raise the open-file limit: {e}");
    }
    let scenario = match cli.scenario {
        Command::Server(s) => Ok(s),
        Command::Scale(s) => Err(s),
        Command::Chat(chat) => {
            let Some(target) = cli.target.first().copied() else {
                eprintln!("ignis-bench: no --target");
                return ExitCode::FAILURE;
            };
            let setup = ChatSetup {
                label: cli.label,
                target: Target {
                    addr: target,
                    path: cli.path,
                },
                rest: cli.rest.unwrap_or(target),
                server_pid: cli.server_pid[0],
                threads: cli.threads,
                connect_timeout: Duration::from_secs(cli.connect_timeout),
            };
            let (db, file) = (cli.database.as_str(), cli.users_file.as_path());
            let result = match chat {
                ChatScenario::Users { count, parallel } => {
                    chat::sign_up(&setup, db, count, parallel, file)
                }
                ChatScenario::Throughput {
                    members,
                    senders,
                    rates,
                    seconds: s,
                    refine,
                } => chat::throughput(
                    &setup,
                    db,
                    file,
                    members,
                    senders,
                    &rates,
                    refine,
                    seconds(s),
                ),
                ChatScenario::Latency {
                    members,
                    senders,
                    rate,
                    seconds: s,
                } => chat::latency_run(&setup, db, file, members, senders, rate, seconds(s)),
                ChatScenario::Idle {
                    clients,
                    room_size,
                    settle_ms,
                } => chat::idle(
                    &setup,
                    db,
                    file,
                    clients,
                    room_size,
                    Duration::from_millis(settle_ms),
                ),
            };
            return match result {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ignis-bench: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let setup = Setup {
        label: cli.label,
        targets: cli
            .target
            .iter()
            .map(|addr| Target {
                addr: *addr,
                path: cli.path.clone(),
            })
            .collect(),
        server_pids: cli.server_pid,
        threads: cli.threads,
        source_ips: cli.source_ips,
        broadcast_path: cli.broadcast_path,
        room_path: cli.room_path,
        rest_addr: cli.rest,
        rest_headers: cli
            .api_key
            .map(|k| format!("X-API-Key: {k}\r\n"))
            .unwrap_or_default(),
        posters: cli.posters,
        connect_timeout: Duration::from_secs(cli.connect_timeout),
    };
    let result = match scenario {
        Err(scale) => run_scale(&setup, scale),
        Ok(scenario) => match scenario {
            Scenario::Connect { clients, settle_ms } => {
                scenario::connect(&setup, clients, Duration::from_millis(settle_ms))
            }
            Scenario::Echo {
                clients,
                seconds: s,
            } => scenario::echo(&setup, clients, seconds(s)),
            Scenario::Broadcast {
                clients,
                rate,
                seconds: s,
            } => scenario::broadcast(&setup, clients, rate, seconds(s)),
            Scenario::Rooms {
                clients,
                sizes,
                rate,
                seconds: s,
            } => scenario::rooms(&setup, clients, &sizes, rate, seconds(s)),
            Scenario::Sweep {
                clients,
                rates,
                seconds: s,
                refine,
            } => scenario::sweep(&setup, clients, &rates, refine, seconds(s)),
            Scenario::Jitter {
                clients,
                cut_every_ms,
                rate,
                seconds: s,
                recovery,
                reconnect_after_ms,
                drain,
            } => scenario::jitter(
                &setup,
                &scenario::JitterPlan {
                    clients,
                    cut_every: Duration::from_millis(cut_every_ms),
                    rate,
                    duration: long_seconds(s),
                    recovery,
                    reconnect_after: Duration::from_millis(reconnect_after_ms),
                    drain: long_seconds(drain),
                },
            ),
            Scenario::Soak {
                minutes,
                clients,
                lifetime,
                echo_every,
                rate,
                rooms,
                rooms_per_client,
                sample_secs,
            } => scenario::soak(
                &setup,
                &scenario::SoakPlan {
                    clients,
                    duration: long_seconds(minutes * 60.0),
                    sample_every: long_seconds(sample_secs),
                    lifetime: long_seconds(lifetime),
                    echo_every: long_seconds(echo_every),
                    rate,
                    rooms,
                    rooms_per_client,
                },
            ),
        },
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ignis-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
