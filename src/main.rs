//! culex: a thread-per-core MQTT broker that reads `mosquitto.conf`.
//!
//! This binary is wiring only: parse the command line and the configuration (exit code 3
//! on any error, as Mosquitto), set up logging, bind the listen sockets, drop privileges,
//! write the pid file and open the log files (as `user`, like Mosquitto 2.0), restore the
//! persistence file, start one shard per core (`shards::runtime`), then serve signals until
//! asked to stop: SIGINT/SIGTERM drain and exit, SIGHUP reloads what can be reloaded,
//! SIGUSR1 saves the state file. Every start-up failure is reported on stderr too.

mod cli;
mod cluster;
// Some of `Config`'s interface (plugins, admin listener) is read by modules still to come.
#[allow(dead_code)]
mod config;
#[cfg(test)]
mod effects;
mod emission;
mod ha;
mod logging;
mod persistence;
mod process;
mod security;
mod settings;
mod sockets;

use cli::Command;
use config::Config;
use shards::control::ServiceMsg;
use shards::cpu_affinity;
use shards::runtime::{self, BrokerHandle, Driver, Launch};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// mimalloc's `arena_eager_commit` (enum value 4 in mimalloc 2.x) commits whole arenas up
/// front; off, only touched pages are committed. Measured with 15,000 idle connections
/// (see README): 2.6 KB of resident memory per connection with it on, 1.4 KB with it off.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs before `main` and before the Rust runtime's first allocation, which is when
/// mimalloc reserves its first arena: the option must be set by then.
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

extern "C" fn configure_allocator() {
    // SAFETY: sets one allocator option; called once, single-threaded, before any allocation.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(cli)) => cli,
        Ok(Command::Help) => {
            print!("{}", cli::usage());
            return ExitCode::from(cli::EXIT_USAGE);
        }
        Ok(Command::Version) => {
            println!("culex {VERSION}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Ha(args)) => return ha::main(args),
        Err(err) => {
            eprintln!("{err}");
            if err.shows_usage() {
                print!("{}", cli::usage());
            }
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(code) => return ExitCode::from(code),
    };
    if cli.test_config {
        return match check_start(&config) {
            Ok(()) => {
                eprintln!("{}: Configuration file is valid.", epoch());
                ExitCode::SUCCESS
            }
            Err(error) => {
                logging::start_failure(&error.message);
                ExitCode::from(cli::EXIT_USAGE)
            }
        };
    }
    let user = config.user.clone();
    match run(&cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The log file gets the failure too, opened as `user` as in a start that
            // succeeds (never created by root, which would lock the broker out of it).
            if process::drop_privileges(&user).is_ok() {
                logging::open_files();
            }
            logging::start_failure(&error.message);
            ExitCode::from(error.code)
        }
    }
}

/// `--test-config`: reads every file the start reads before it accepts clients, in the
/// start's order and with its privileges (TLS files before dropping them to `user`,
/// password, ACL and dynamic-security files after), so that a configuration it calls
/// valid does not then fail to start on them. Writes nothing.
fn check_start(config: &Config) -> Result<(), settings::StartError> {
    settings::shard_settings(config)?;
    process::drop_privileges(&config.user).map_err(|error| settings::StartError {
        message: format!("Error: {}.", process::os_text(&error)),
        code: cli::EXIT_USAGE,
    })?;
    security::base_policy(config)?;
    security::check_dynsec(config)
}

fn epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the config named on the command line (or the embedded default), applies the
/// command-line overrides, installs logging and logs the warnings.
fn load_config(cli: &cli::Cli) -> Result<Config, u8> {
    let loaded = match &cli.config_file {
        Some(path) => config::load(path),
        None => Ok(Config::embedded_default()),
    };
    let mut config = loaded.map_err(|err| {
        for line in err.to_string().lines() {
            eprintln!("{}: {line}", epoch());
        }
        err.exit_code()
    })?;
    let env_location = std::env::var_os("MOSQUITTO_PERSISTENCE_LOCATION").map(PathBuf::from);
    config.apply_overrides(&cli.overrides(env_location));
    logging::install(&config.logging);
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    Ok(config)
}

fn run(cli: &cli::Cli, config: Config) -> Result<(), settings::StartError> {
    // Every failure says what failed: `Error: <what>: <why>.`, exit code 1.
    let start_error = |what: &'static str| {
        move |error: std::io::Error| settings::StartError {
            message: match what {
                "" => format!("Error: {}.", process::os_text(&error)),
                what => format!("Error: {what}: {}.", process::os_text(&error)),
            },
            code: 1,
        }
    };
    if config.daemon {
        process::daemonize().map_err(start_error("cannot run in the background"))?;
    }
    log::info!("culex version {VERSION} starting");
    match &config.config_file {
        Some(path) => log::info!("Config loaded from {}.", path.display()),
        None => log::info!("Using default config."),
    }
    if config.local_only {
        log::info!("{}", config::LOCAL_ONLY_MESSAGE);
    }
    let settings = Arc::new(settings::shard_settings(&config)?);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = config
        .worker_threads(cores)
        .clamp(1, shards::limits::SHARDS_MAX);
    // Its errors name the address and port (and drop_privileges's the user). A cluster
    // node binds its client listeners when it serves clients (the replication core
    // decides); the admin, HTTP and Unix-socket listeners stay open whatever its role.
    let ha = config.control_api();
    let bound = if ha {
        let listeners = &settings.listeners;
        sockets::bind_selected(
            &settings,
            shards,
            |index| !cluster::follows_leadership(&listeners[index]),
            sockets::OrphanWait::Wait,
        )
    } else {
        sockets::bind_all(&settings, shards)
    }
    .map_err(start_error(""))?;
    let cpus = shard_cpus(config.cpu_affinity, shards);
    process::drop_privileges(&config.user).map_err(start_error(""))?;
    // Removed again when `run` returns, at exit or on a later start-up failure.
    let _pid_file = match &config.pid_file {
        Some(path) => Some(process::PidFile::write(path).map_err(|e| pid_file_error(path, &e))?),
        None => None,
    };
    logging::open_files();
    let restore = persistence::restore(settings.persistence.as_ref(), shards);
    let dynsec = security::dynsec_service(&config)?;
    let access = security::initial_policy(&config, dynsec.as_ref())?;
    let (control, requests) = if dynsec.is_some() || ha {
        let (sender, receiver) = mpsc::channel();
        (Some(sender), Some(receiver))
    } else {
        (None, None)
    };
    let cluster_status = ha.then(|| Arc::new(shards::cluster_status::ClusterStatus::default()));
    let driver = if std::env::var_os("CULEX_EPOLL").is_some() {
        Driver::Epoll
    } else {
        Driver::Auto
    };
    // A cluster node's shards emit their durable changes to the replication core (Full
    // Sync); otherwise only the measurement consumer attaches, when asked for.
    let output = if ha {
        (0..shards)
            .map(|_| shards::state::port::OutputRing::new())
            .collect()
    } else {
        emission::start(shards)
            .map_err(start_error("cannot start the emission consumer"))?
            .unwrap_or_default()
    };
    let broker = runtime::start(Launch {
        settings: settings.clone(),
        access,
        control: control.clone(),
        sockets: bound.shards,
        restore,
        driver,
        cpus,
        output: output.clone(),
        cluster: cluster_status.clone(),
    })
    .map_err(start_error("cannot start the shard threads"))?;
    logging::publish_to(broker.inboxes());
    let client_sockets = cluster::SharedGuard::default();
    match (cluster_status, dynsec, requests) {
        (Some(status), dynsec, Some(requests)) => {
            cluster::note_license();
            let data_dir = cluster::data_dir(config.persistence.location.as_deref());
            log::info!("HA: data directory {}.", data_dir.display());
            let listeners = cluster::ClientSockets::new(
                settings.clone(),
                shards,
                broker.inboxes(),
                client_sockets.clone(),
            );
            replication::core::spawn(replication::core::Setup {
                data_dir,
                dynsec: dynsec.map(|service| replication::core::Dynsec {
                    state: service.state,
                    path: service.path,
                    base: service.base,
                }),
                inboxes: broker.inboxes(),
                requests,
                listeners: Box::new(listeners),
                status,
                rings: output,
            })
            .map_err(start_error("cannot start the replication core"))?;
        }
        (None, Some(service), Some(requests)) => {
            service
                .spawn(broker.inboxes(), requests)
                .map_err(start_error("cannot start the dynamic security service"))?;
        }
        _ => {}
    }
    // Signals are handled before the line says so: a SIGHUP or SIGTERM sent once a
    // supervisor (or a test) saw "running" reloads or stops, never kills (as Mosquitto).
    let signals = install_signals()?;
    log::info!(
        "culex version {VERSION} running ({shards} shard{})",
        if shards == 1 { "" } else { "s" }
    );
    serve_signals(
        cli,
        config,
        broker,
        control,
        signals,
        (bound.guard, client_sockets),
    )
}

/// Mosquitto's words for a pid file that cannot be written, then which file and why.
fn pid_file_error(path: &std::path::Path, error: &std::io::Error) -> settings::StartError {
    settings::StartError {
        message: format!(
            "Error: Unable to write pid file.\nError: cannot write {}: {}.",
            path.display(),
            process::os_text(error)
        ),
        code: 1,
    }
}

/// The CPU each shard thread is pinned to (`cpu_affinity`), logged once.
fn shard_cpus(mode: cpu_affinity::Mode, shards: usize) -> Vec<Option<usize>> {
    let allowed = match cpu_affinity::allowed_cpus() {
        Ok(allowed) => allowed,
        Err(error) => {
            if mode == cpu_affinity::Mode::Pin {
                log::warn!("Warning: Unable to read the CPU affinity mask: {error}.");
            }
            Vec::new()
        }
    };
    let cpus = cpu_affinity::plan(mode, &allowed, shards);
    let pinned: Vec<String> = cpus.iter().flatten().map(usize::to_string).collect();
    if !pinned.is_empty() {
        log::info!("Shard threads pinned to CPUs {}.", pinned.join(","));
    }
    cpus
}

/// The main thread's loop: signals and autosave.
/// Takes over SIGINT, SIGTERM, SIGHUP and SIGUSR1: from here on they arrive on the channel.
fn install_signals() -> Result<mpsc::Receiver<i32>, settings::StartError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1])
        .map_err(|error| settings::StartError {
            message: format!("Error: cannot install signal handlers: {error}."),
            code: 1,
        })?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("culex-signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(signal).is_err() {
                    return;
                }
            }
        })
        .map_err(|error| settings::StartError {
            message: format!("Error: {error}."),
            code: 1,
        })?;
    Ok(rx)
}

/// The main thread's loop: signals and autosave.
fn serve_signals(
    cli: &cli::Cli,
    mut config: Config,
    broker: BrokerHandle,
    control: Option<mpsc::Sender<ServiceMsg>>,
    rx: mpsc::Receiver<i32>,
    listening: (sockets::ListenGuard, cluster::SharedGuard),
) -> Result<(), settings::StartError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut next_save = autosave_deadline(&config);
    let mut saved_changes = durable_changes(&broker);
    loop {
        let wait = next_save.map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(SIGINT) | Ok(SIGTERM) => break,
            Ok(SIGUSR1) => persistence::save(&broker, &config),
            Ok(SIGHUP) => {
                config = reload(cli, config, &broker, control.as_ref());
                next_save = autosave_deadline(&config);
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if autosave_due(&config, &broker, saved_changes) {
                    saved_changes = durable_changes(&broker);
                    persistence::save(&broker, &config);
                }
                next_save = autosave_deadline(&config);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // No new clients from here on, and the ports are free again at once (a restart right
    // after exit binds them), whatever the shards' io_uring instances still hold.
    let (listening, client_sockets) = listening;
    listening.close();
    if let Some(guard) = client_sockets
        .lock()
        .ok()
        .and_then(|mut guard| guard.take())
    {
        guard.close();
    }
    let final_state = config.persistence.enabled.then(|| broker.snapshot());
    broker.shutdown();
    if let Some(Ok(parts)) = final_state {
        persistence::write(parts, &config);
    }
    log::info!("culex version {VERSION} terminating");
    Ok(())
}

/// When to look at autosave next: after `autosave_interval` seconds, or every second with
/// `autosave_on_changes` (the interval then counts changes, as in Mosquitto).
fn autosave_deadline(config: &Config) -> Option<Instant> {
    let persistence = &config.persistence;
    let every = if persistence.autosave_on_changes {
        1
    } else {
        u64::from(persistence.autosave_interval)
    };
    (persistence.enabled && persistence.autosave_interval > 0)
        .then(|| Instant::now() + Duration::from_secs(every))
}

/// True when an autosave is due now.
fn autosave_due(config: &Config, broker: &BrokerHandle, saved_changes: u64) -> bool {
    let persistence = &config.persistence;
    !persistence.autosave_on_changes
        || durable_changes(broker).saturating_sub(saved_changes)
            >= u64::from(persistence.autosave_interval)
}

/// Changes to durable state since start, over all shards.
fn durable_changes(broker: &BrokerHandle) -> u64 {
    shards::stats::totals(&broker.stats).durable_changes
}

/// SIGHUP: re-reads the file and applies what can change without a restart.
fn reload(
    cli: &cli::Cli,
    running: Config,
    broker: &BrokerHandle,
    control: Option<&mpsc::Sender<ServiceMsg>>,
) -> Config {
    log::info!("Reloading config.");
    let Some(path) = &running.config_file else {
        return running;
    };
    let mut fresh = match config::load(path) {
        Ok(fresh) => fresh,
        Err(error) => {
            log::error!("{error}");
            log::error!("Error: reload failed; keeping the running configuration.");
            return running;
        }
    };
    let env_location = std::env::var_os("MOSQUITTO_PERSISTENCE_LOCATION").map(PathBuf::from);
    fresh.apply_overrides(&cli.overrides(env_location));
    let outcome = running.reloadable_from(&fresh);
    for name in &outcome.needs_restart {
        log::warn!("Warning: {name} changed; the change takes effect after a restart.");
    }
    logging::reconfigure(&outcome.config.logging);
    // Password and ACL files and TLS certificates are read again here (Mosquitto re-reads
    // them on SIGHUP); a bad file keeps the running configuration.
    let prepared = settings::shard_settings(&outcome.config)
        .and_then(|settings| security::base_policy(&outcome.config).map(|base| (settings, base)));
    match prepared {
        Ok((settings, base)) => {
            // With dynamic security the service owns the rules: it combines them with the
            // new base and hands the result to the shards, so they are never without it.
            let own_rules = match control {
                Some(control) => {
                    let _ = control.send(ServiceMsg::Rebase(Box::new(base)));
                    None
                }
                None => Some(Arc::new(base)),
            };
            broker.reload(Arc::new(settings), own_rules);
        }
        Err(error) => {
            log::error!("{}", error.message);
            return running;
        }
    }
    outcome.config
}
