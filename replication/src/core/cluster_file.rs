//! `cluster.json` in the HA data directory: which cluster this node belongs to, in which
//! mode, and the nodes it knows. Written (crash-safely) by createCluster and joinCluster
//! and when the membership changes, removed by leaveCluster and deleteCluster; read at
//! start, so a restarted node rejoins by itself. Raft's own membership (in its log and
//! snapshots) is the authority on who votes; this file tells the node its own identity and
//! where to listen before Raft has started.
//!
//! The format is the createCluster command's fields, so an operator can read it:
//! `{"clustername":…,"syncmode":…,"nodes":[{"nodeid":…,"address":…,"port":…,"mynode":true},…]}`.

use crate::control::{NodeSpec, SyncMode};
use shards::dynsec::json::{self, Value};
use shards::dynsec::json_out::{to_formatted, Out};
use std::io;
use std::path::Path;

/// The file's name in the HA data directory.
pub const FILE_NAME: &str = "cluster.json";

/// This node's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFile {
    /// `clustername`.
    pub name: String,
    /// `syncmode`.
    pub sync: SyncMode,
    /// The nodes; exactly one has `mine` set: this node.
    pub nodes: Vec<NodeSpec>,
}

impl ClusterFile {
    /// This node's entry.
    pub fn me(&self) -> Option<&NodeSpec> {
        self.nodes.iter().find(|node| node.mine)
    }

    /// The file's bytes.
    pub fn render(&self) -> Vec<u8> {
        let nodes = self
            .nodes
            .iter()
            .map(|node| {
                let mut members = vec![
                    ("nodeid", Out::Int(i64::from(node.node_id))),
                    ("address", Out::str(node.address.as_bytes())),
                    ("port", Out::Int(i64::from(node.port))),
                ];
                if node.mine {
                    members.push(("mynode", Out::Bool(true)));
                }
                Out::Object(members)
            })
            .collect();
        let mut text = to_formatted(&Out::Object(vec![
            ("clustername", Out::str(self.name.as_bytes())),
            ("syncmode", Out::str(self.sync.as_str().as_bytes())),
            ("nodes", Out::Array(nodes)),
        ]));
        text.push(b'\n');
        text
    }

    /// Reads the file's bytes; the error says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<ClusterFile, String> {
        let tree = json::parse(bytes).map_err(|e| e.to_string())?;
        let text = |value: Option<&Value>, field: &str| {
            value
                .and_then(Value::as_bytes)
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_string)
                .ok_or_else(|| format!("\"{field}\" is missing or not a string"))
        };
        let name = text(tree.get("clustername"), "clustername")?;
        let sync = text(tree.get("syncmode"), "syncmode")?;
        let sync = SyncMode::from_name(sync.as_bytes())
            .ok_or_else(|| format!("unknown syncmode \"{sync}\""))?;
        let list = tree
            .get("nodes")
            .and_then(Value::as_array)
            .ok_or("\"nodes\" is missing or not an array")?;
        let mut nodes = Vec::with_capacity(list.len());
        for node in list {
            let number = |field: &str, max: i64| {
                node.get(field)
                    .and_then(Value::as_i64)
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("a node's \"{field}\" is missing or out of range"))
            };
            nodes.push(NodeSpec {
                address: text(node.get("address"), "address")?,
                port: number("port", i64::from(u16::MAX))? as u16,
                node_id: number("nodeid", 1023)? as u16,
                mine: node.get("mynode").and_then(Value::as_bool).unwrap_or(false),
            });
        }
        let file = ClusterFile { name, sync, nodes };
        if file.nodes.iter().filter(|node| node.mine).count() != 1 {
            return Err("exactly one node must have \"mynode\": true".to_string());
        }
        Ok(file)
    }

    /// The file in `dir`, if there is one.
    pub fn load(dir: &Path) -> io::Result<Option<ClusterFile>> {
        let path = dir.join(FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => ClusterFile::parse(&bytes).map(Some).map_err(|why| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {why}", path.display()),
                )
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes the file in `dir` crash-safely (creating `dir`).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        shards::atomic_file::save_atomic(&dir.join(FILE_NAME), &self.render())
    }

    /// Removes the file from `dir` (leaving the cluster).
    pub fn remove(dir: &Path) -> io::Result<()> {
        match std::fs::remove_file(dir.join(FILE_NAME)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> ClusterFile {
        let node = |id: u16, mine| NodeSpec {
            address: format!("127.0.0.{id}"),
            port: 7000,
            node_id: id,
            mine,
        };
        ClusterFile {
            name: "plant".to_string(),
            sync: SyncMode::Dynsec,
            nodes: vec![node(1, false), node(2, true), node(3, false)],
        }
    }

    #[test]
    fn the_file_reads_back_as_written() {
        let file = three();
        assert_eq!(ClusterFile::parse(&file.render()), Ok(file.clone()));
        assert_eq!(file.me().map(|me| me.node_id), Some(2));
    }

    #[test]
    fn a_damaged_file_says_what_is_wrong() {
        let text = String::from_utf8(three().render()).expect("utf-8");
        let cases = [
            (text.replace("\"dynsec\"", "\"half\""), "syncmode"),
            (
                text.replace("\"mynode\":\ttrue", "\"mynode\":\tfalse"),
                "mynode",
            ),
            (text.replace("7000", "0"), "port"),
            (text[..text.len() / 2].to_string(), "JSON"),
        ];
        for (bytes, word) in cases {
            let error = ClusterFile::parse(bytes.as_bytes()).expect_err("refused");
            assert!(error.contains(word), "{error}");
        }
    }

    #[test]
    fn save_load_and_remove_use_the_data_directory() {
        let dir = std::env::temp_dir().join(format!("culex-cluster-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(ClusterFile::load(&dir).expect("no file"), None);
        three().save(&dir).expect("saved");
        assert_eq!(ClusterFile::load(&dir).expect("read"), Some(three()));
        ClusterFile::remove(&dir).expect("removed");
        assert_eq!(ClusterFile::load(&dir).expect("gone"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
