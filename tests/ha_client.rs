//! The request/response client of `culex ha` against a real broker. The cluster does not
//! answer on `$CONTROL/cedalo/ha/v1` in a single broker, so the client's code (the file
//! `src/ha/client.rs` itself, included below) is driven against the dynamic-security API,
//! which has the same envelope: connect, subscribe, publish, wait for the entry with our
//! `correlationData`, over MQTT 5.0 and 3.1.1, plus each way it can fail (refused
//! connection, refused subscription, no answer). Then `culex ha` itself, as a process.
//!
//! Run by `cargo test` (an integration test of the `culex` package); starts
//! `target/debug/culex` on free loopback ports with dynamic security, its admin created
//! from `MOSQUITTO_DYNSEC_PASSWORD`.

#[allow(dead_code)]
#[path = "../src/ha/client.rs"]
mod client;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client::{call, CallError, Endpoint, Topics};
use shards::dynsec::json::Value;
use shards::mqtt::Protocol;

const ADMIN_PASSWORD: &str = "admin-password-1234";
const DYNSEC: Topics<'static> = Topics {
    request: "$CONTROL/dynamic-security/v1",
    response: "$CONTROL/dynamic-security/v1/response",
};
const PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

/// A Culex process with dynamic security on a free loopback port; killed when dropped.
struct Broker {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Broker {
    fn start(name: &str) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "culex-ha-client-{name}-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("test directory");
        let config = dir.join("culex.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\nuser root\n\
                 plugin {PLUGIN}\nplugin_opt_config_file {}\n",
                dir.join("dynamic-security.json").display()
            ),
        )
        .expect("config written");
        let log = std::fs::File::create(dir.join("broker.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_culex"))
            .arg("-c")
            .arg(&config)
            .env("MOSQUITTO_DYNSEC_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("culex starts");
        let mut broker = Broker { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = broker.child.try_wait().expect("child status");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "culex did not start listening on {port} ({exited:?}):\n{}",
                broker.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    fn endpoint(&self, user: &str, password: &str, protocol: Protocol) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: self.port,
            username: Some(user.into()),
            password: Some(password.into()),
            client_id: format!("ha-client-test-{}", protocol.level()),
            protocol,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Runs one dynsec command object (JSON text without correlationData) as admin.
fn admin_call(broker: &Broker, command: &str, correlation: &str) -> client::Reply {
    let payload = format!(
        r#"{{"commands":[{},"correlationData":"{correlation}"}}]}}"#,
        command.trim_end_matches('}')
    );
    let endpoint = broker.endpoint("admin", ADMIN_PASSWORD, Protocol::V5);
    call(
        &endpoint,
        DYNSEC,
        payload.as_bytes(),
        correlation.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{command}: {e}\n{}", broker.log()))
}

#[test]
fn list_clients_over_mqtt_5_and_3_1_1() {
    let broker = Broker::start("list");
    for protocol in [Protocol::V5, Protocol::V311] {
        let correlation = format!("list-{}", protocol.level());
        // Two commands in one request: the entry returned is the one carrying ours.
        let payload = format!(
            r#"{{"commands":[{{"command":"listRoles","correlationData":"someone-else"}},
            {{"command":"listClients","correlationData":"{correlation}"}}]}}"#
        );
        let endpoint = broker.endpoint("admin", ADMIN_PASSWORD, protocol);
        let reply = call(
            &endpoint,
            DYNSEC,
            payload.as_bytes(),
            correlation.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{protocol:?}: {e}\n{}", broker.log()));
        assert_eq!(
            text(&reply.entry, "command").as_deref(),
            Some("listClients")
        );
        assert_eq!(text(&reply.entry, "correlationData"), Some(correlation));
        assert_eq!(reply.entry.get("error"), None);
        let clients: Vec<String> = reply
            .entry
            .get("data")
            .and_then(|d| d.get("clients"))
            .and_then(Value::as_array)
            .expect("data.clients")
            .iter()
            .filter_map(|c| {
                c.as_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            })
            .collect();
        assert!(clients.contains(&"admin".to_owned()), "{clients:?}");
        // The payload is the broker's whole response, both entries.
        let whole = String::from_utf8_lossy(&reply.payload).into_owned();
        assert!(
            whole.starts_with(r#"{"responses":[{"command":"listRoles","data":"#),
            "{whole}"
        );
    }
    // An error answer is a response like any other: the caller reads its "error".
    let reply = admin_call(
        &broker,
        r#"{"command":"getClient","username":"nobody"}"#,
        "e",
    );
    assert_eq!(
        text(&reply.entry, "error").as_deref(),
        Some("Client not found")
    );
}

#[test]
fn refusals_and_silence_are_errors_not_hangs() {
    let broker = Broker::start("refusals");
    // A wrong password: the connection is refused, in each protocol's words.
    for (protocol, words) in [
        (
            Protocol::V5,
            "not authorised (check the username and password) (0x87)",
        ),
        (
            Protocol::V311,
            "not authorised (check the username and password) (code 5)",
        ),
    ] {
        let endpoint = broker.endpoint("admin", "wrong-password", protocol);
        match call(&endpoint, DYNSEC, b"{}", b"x") {
            Err(CallError::Refused(text)) => {
                assert!(
                    text.contains("refused the connection") && text.contains(words),
                    "{text}"
                )
            }
            other => panic!("{protocol:?}: {other:?}"),
        }
    }
    // A client without rights on $CONTROL: its subscription to the response topic is
    // refused (default access denies subscribing), so it is told instead of waiting.
    let created = admin_call(
        &broker,
        r#"{"command":"createClient","username":"plain","password":"plain-password"}"#,
        "create",
    );
    assert_eq!(created.entry.get("error"), None, "{created:?}");
    for protocol in [Protocol::V5, Protocol::V311] {
        let endpoint = broker.endpoint("plain", "plain-password", protocol);
        match call(&endpoint, DYNSEC, br#"{"commands":[]}"#, b"x") {
            Err(CallError::Refused(text)) => assert!(
                text.contains("refused the subscription to $CONTROL/dynamic-security/v1/response"),
                "{text}"
            ),
            other => panic!("{protocol:?}: {other:?}"),
        }
    }
    // Allowed to subscribe and receive, not to publish the request: MQTT 5.0's PUBACK says
    // so; 3.1.1 has no way to, so the request is dropped and the call times out.
    for command in [
        r#"{"command":"createRole","rolename":"listen","acls":[
            {"acltype":"subscribePattern","topic":"$CONTROL/dynamic-security/v1/response",
             "allow":true},
            {"acltype":"publishClientReceive","topic":"$CONTROL/dynamic-security/v1/response",
             "allow":true}]}"#,
        r#"{"command":"addClientRole","username":"plain","rolename":"listen"}"#,
    ] {
        let reply = admin_call(&broker, command, "role");
        assert_eq!(reply.entry.get("error"), None, "{reply:?}");
    }
    let payload = br#"{"commands":[{"command":"listClients","correlationData":"p"}]}"#;
    let mut endpoint = broker.endpoint("plain", "plain-password", Protocol::V5);
    endpoint.timeout = Duration::from_secs(1);
    assert_eq!(
        call(&endpoint, DYNSEC, payload, b"p"),
        Err(CallError::Refused(
            "the broker refused the request: not authorised (this client lacks the rights) \
             (0x87)"
                .into()
        ))
    );
    endpoint.protocol = Protocol::V311;
    assert_eq!(
        call(&endpoint, DYNSEC, payload, b"p"),
        Err(CallError::Timeout(Duration::from_secs(1)))
    );
    // A control topic nobody answers: the call ends at its deadline with Timeout.
    let silent = Topics {
        request: "$CONTROL/culex-test/v1",
        response: "$CONTROL/culex-test/v1/response",
    };
    let mut endpoint = broker.endpoint("admin", ADMIN_PASSWORD, Protocol::V5);
    endpoint.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let payload = br#"{"commands":[{"command":"getNode","correlationData":"t"}]}"#;
    assert_eq!(
        call(&endpoint, silent, payload, b"t"),
        Err(CallError::Timeout(Duration::from_secs(1)))
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    // Nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0").expect("a port");
    endpoint.port = closed.local_addr().expect("address").port();
    drop(closed);
    assert!(matches!(
        call(&endpoint, DYNSEC, b"{}", b"x"),
        Err(CallError::Network(text)) if text.contains("cannot connect")
    ));
}

#[test]
fn culex_ha_reports_no_answer_and_refusal_with_exit_code_2() {
    let broker = Broker::start("cli");
    let port = broker.port.to_string();
    let run = |password: &str| {
        Command::new(env!("CARGO_BIN_EXE_culex"))
            .args([
                "ha", "node", "-p", &port, "-u", "admin", "-P", password, "-W", "1",
            ])
            .output()
            .expect("culex ha runs")
    };
    // A single broker does not serve the cluster API: the request goes out, nothing
    // answers, and the command says so when -W expires.
    let silent = run(ADMIN_PASSWORD);
    let stderr = String::from_utf8_lossy(&silent.stderr);
    assert_eq!(silent.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "Error: no answer from 127.0.0.1:{port}: no response within 1 s"
        )),
        "{stderr}"
    );
    assert!(silent.stdout.is_empty());
    let refused = run("wrong-password");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the broker refused the connection: not authorised (check the username"),
        "{stderr}"
    );
}
