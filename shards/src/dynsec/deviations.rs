//! Every deliberate difference between Culex's dynamic security and Debian Mosquitto
//! 2.0.11, the captured baseline (spec §17 recommendations and the project's decisions),
//! in one table.
//!
//! The golden tests (`tests::golden`, `tests::fixtures`) consult this table and nothing
//! else: where a deviation changes a captured response, the final file or the config-load
//! case, its `edits` say exactly which text Culex writes differently, and the tests apply
//! those edits to the capture and then demand byte equality. Each `find` must occur
//! exactly once when applied, so an edit can never silently stop applying.
//! The only other normalisation in that test is the one the captures themselves require:
//! salts and hashes of passwords set during the replay are random, so they are checked by
//! verifying the known plaintext instead of by comparing bytes.

/// Which golden text an edit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `response_raw` of replay capture `NNN`.
    Response(u16),
    /// `final-dynamic-security.json`.
    FinalFile,
    /// In `config-load-cases.json`: the compact serialisation of `observed.<command>`, or
    /// `resaved_file_text` for `"resaved"`.
    ConfigLoad(&'static str),
    /// In `behaviour-observations.json`: the compact serialisation of the `observed`
    /// object of the result with this name.
    Behaviour(&'static str),
}

/// A textual edit of a golden text: Culex writes `replace` where Mosquitto wrote `find`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoldenEdit {
    /// The golden text.
    pub target: Target,
    /// Text of Mosquitto's output that Culex does not produce (must occur exactly once
    /// when the edit is applied; edits apply in table order).
    pub find: &'static str,
    /// What Culex produces instead.
    pub replace: &'static str,
}

/// One deliberate difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deviation {
    /// Stable identifier, cited in code comments.
    pub id: &'static str,
    /// What Mosquitto 2.0.11 does.
    pub mosquitto: &'static str,
    /// What Culex does.
    pub culex: &'static str,
    /// Why.
    pub reason: &'static str,
    /// Golden texts that change because of it.
    pub edits: &'static [GoldenEdit],
}

const SENSORS_DUPLICATE_ACL: &str =
    r#"{"acltype":"publishClientSend","topic":"sensors/#","priority":99,"allow":false},"#;
const DEV1_TEXTNAME_2_0_11: &str = r#""textname":"CHANGED-BEFORE-ERROR""#;
const DEV1_TEXTNAME_CULEX: &str = r#""textname":"Device One""#;

/// The 64-byte salt of `salt64`/`encoded21` in `config-load-cases.json`.
macro_rules! salt64 {
    () => {
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
    };
}

/// Their hash.
macro_rules! hash64 {
    () => {
        "JrtMcAode8JqeCJXlgOC4UTlha3nNj3uqQ/JJ6PC6gYpLRgQmHB5tmiJyX/S+O7hC9ZhAHGIPowY1zgDyJqjoQ=="
    };
}

const fn edit(target: Target, find: &'static str, replace: &'static str) -> GoldenEdit {
    GoldenEdit {
        target,
        find,
        replace,
    }
}

/// The table.
pub const DEVIATIONS: &[Deviation] = &[
    Deviation {
        id: "duplicate-acls-first-wins",
        mosquitto: "createRole, modifyRole and file loading keep every copy of an ACL with \
                    the same (acltype, topic) [g:029, g:030].",
        culex: "The first copy is kept, later ones are dropped (Mosquitto 2.0.16+), so a \
                role never holds two ACLs that addRoleACL would call duplicates.",
        reason: "spec §17 'fix: first wins'; removeRoleACL could only ever remove one copy.",
        edits: &[
            edit(Target::Response(30), SENSORS_DUPLICATE_ACL, ""),
            edit(Target::Response(45), SENSORS_DUPLICATE_ACL, ""),
            edit(Target::Response(223), SENSORS_DUPLICATE_ACL, ""),
            edit(
                Target::FinalFile,
                "{\n\t\t\t\t\t\"acltype\":\t\"publishClientSend\",\n\t\t\t\t\t\"topic\":\t\"sensors/#\",\n\t\t\t\t\t\"priority\":\t99,\n\t\t\t\t\t\"allow\":\tfalse\n\t\t\t\t}, ",
                "",
            ),
            edit(
                Target::ConfigLoad("listRoles"),
                r#"{"acltype":"publishClientSend","topic":"a/#","priority":7,"allow":false},"#,
                "",
            ),
            edit(
                Target::ConfigLoad("resaved"),
                "{\n\t\t\t\t\t\"acltype\":\t\"publishClientSend\",\n\t\t\t\t\t\"topic\":\t\"a/#\",\n\t\t\t\t\t\"priority\":\t7,\n\t\t\t\t\t\"allow\":\tfalse\n\t\t\t\t}, ",
                "",
            ),
        ],
    },
    Deviation {
        id: "modify-validates-first",
        mosquitto: "modifyClient and modifyGroup apply clientid, password and text fields \
                    before checking `roles`; a roles error leaves them changed in memory, and \
                    the username or group members are kicked anyway [g:196, g:197].",
        culex: "Every field is checked before anything is applied: a failing modifyClient or \
                modifyGroup changes nothing and kicks nobody (Mosquitto 2.0.15+). Unknown \
                groups/clients in `groups`/`clients` are still skipped as in 2.0.11.",
        reason: "a bad control command changes nothing (CONTRIBUTING.md); spec §17.",
        edits: &[
            edit(Target::Response(197), DEV1_TEXTNAME_2_0_11, DEV1_TEXTNAME_CULEX),
            edit(Target::Response(200), DEV1_TEXTNAME_2_0_11, DEV1_TEXTNAME_CULEX),
            edit(Target::Response(208), DEV1_TEXTNAME_2_0_11, DEV1_TEXTNAME_CULEX),
            edit(Target::Response(222), DEV1_TEXTNAME_2_0_11, DEV1_TEXTNAME_CULEX),
            edit(
                Target::FinalFile,
                "\"textname\":\t\"CHANGED-BEFORE-ERROR\"",
                "\"textname\":\t\"Device One\"",
            ),
            edit(
                Target::Behaviour("modifyClient-error"),
                r#""victim_disconnect_reason":152"#,
                r#""victim_disconnect_reason":null"#,
            ),
        ],
    },
    Deviation {
        id: "password-format-follows-file",
        mosquitto: "New passwords are stored as password/salt/iterations with a 12-byte salt \
                    and 101 iterations.",
        culex: "The same in a file that already uses that form, and in a new file or one \
                without passwords. A file whose passwords are all Mosquitto 2.1's \
                encoded_password gets new ones in that form ($7$, 1000 iterations, 64-byte \
                salt), as 2.1 writes them. `plugin_opt_password_format 2.0|2.1` chooses \
                explicitly; the start-up log names the format in use.",
        reason: "A file must go back to the broker it came from: Mosquitto 2.0 reads 2.1's \
                 hashes as \"no password\", so a 2.0 file stays in 2.0's form.",
        edits: &[],
    },
    Deviation {
        id: "duplicate-entries-first-wins",
        mosquitto: "Duplicate usernames, group names and role names in the file are loaded as \
                    separate entries and written back.",
        culex: "The first entry wins, later duplicates are ignored with a load warning \
                (Mosquitto 2.0.16+).",
        reason: "spec §11.4 recommendation; 2.0.11 logins failed with duplicates.",
        edits: &[
            edit(Target::ConfigLoad("listClients"), r#""totalCount":8"#, r#""totalCount":7"#),
            edit(
                Target::ConfigLoad("listClients"),
                r#""groups":[]},{"username":"ok1","textname":"duplicate entry","roles":[],"groups":[{"groupname":"g1","priority":2}]}"#,
                r#""groups":[{"groupname":"g1","priority":2}]}"#,
            ),
            edit(Target::ConfigLoad("listGroups"), r#""totalCount":2"#, r#""totalCount":1"#),
            edit(
                Target::ConfigLoad("listGroups"),
                r#",{"groupname":"g1","textname":"duplicate group","clients":[],"roles":[]}"#,
                "",
            ),
            edit(Target::ConfigLoad("listRoles"), r#""totalCount":3"#, r#""totalCount":2"#),
            edit(
                Target::ConfigLoad("listRoles"),
                r#",{"rolename":"r1","textname":"duplicate role","acls":[]}"#,
                "",
            ),
            edit(
                Target::ConfigLoad("resaved"),
                "}, {\n\t\t\t\"username\":\t\"ok1\",\n\t\t\t\"textname\":\t\"duplicate entry\",\n\t\t\t\"roles\":\t[]\n\t\t}]",
                "}]",
            ),
            edit(
                Target::ConfigLoad("resaved"),
                "}, {\n\t\t\t\"groupname\":\t\"g1\",\n\t\t\t\"textname\":\t\"duplicate group\",\n\t\t\t\"roles\":\t[],\n\t\t\t\"clients\":\t[]\n\t\t}]",
                "}]",
            ),
            edit(
                Target::ConfigLoad("resaved"),
                "}, {\n\t\t\t\"rolename\":\t\"r1\",\n\t\t\t\"textname\":\t\"duplicate role\",\n\t\t\t\"acls\":\t[]\n\t\t}]",
                "}]",
            ),
        ],
    },
    Deviation {
        id: "password-load-rules-2-1",
        mosquitto: "A client whose salt is not exactly 12 bytes, whose hash is not 64 bytes \
                    or whose iterations < 1 is dropped entirely; encoded_password is ignored \
                    (config-load-cases.json: badsalt, salt64, encoded21).",
        culex: "As Mosquitto 2.1: 12- and 64-byte salts and encoded_password ($7$, $6$) are \
                read; an unusable password leaves the client loaded without a password; an \
                encoded_password this build cannot verify (e.g. $argon2id$) is kept verbatim.",
        reason: "Files written by 2.1 must load without losing clients.",
        edits: &[
            edit(Target::ConfigLoad("listClients"), r#""totalCount":7"#, r#""totalCount":9"#),
            edit(
                Target::ConfigLoad("listClients"),
                r#"{"username":"dis""#,
                r#"{"username":"badsalt","roles":[],"groups":[]},{"username":"dis""#,
            ),
            edit(
                Target::ConfigLoad("listClients"),
                r#""groups":[{"groupname":"g1","priority":2}]}]"#,
                r#""groups":[{"groupname":"g1","priority":2}]},{"username":"salt64","roles":[],"groups":[]}]"#,
            ),
            edit(
                Target::ConfigLoad("resaved"),
                "}, {\n\t\t\t\"username\":\t\"dis\",",
                "}, {\n\t\t\t\"username\":\t\"badsalt\",\n\t\t\t\"roles\":\t[]\n\t\t}, {\n\t\t\t\"username\":\t\"dis\",",
            ),
            edit(
                Target::ConfigLoad("resaved"),
                "\"username\":\t\"encoded21\",\n\t\t\t\"roles\":\t[]",
                concat!(
                    "\"username\":\t\"encoded21\",\n\t\t\t\"roles\":\t[],\n\t\t\t\"encoded_password\":\t",
                    "\"$7$1000$", salt64!(), "$", hash64!(), "\""
                ),
            ),
            edit(
                Target::ConfigLoad("resaved"),
                "\"iterations\":\t101\n\t\t}],",
                concat!(
                    "\"iterations\":\t101\n\t\t}, {\n\t\t\t\"username\":\t\"salt64\",\n\t\t\t\"roles\":\t[],",
                    "\n\t\t\t\"password\":\t\"", hash64!(), "\",\n\t\t\t\"salt\":\t\"", salt64!(),
                    "\",\n\t\t\t\"iterations\":\t1000\n\t\t}],"
                ),
            ),
        ],
    },
    Deviation {
        id: "delete-anonymous-group-forbidden",
        mosquitto: "deleteGroup of the anonymous group is accepted and crashed the broker.",
        culex: "Answered with \"Deleting the anonymous group is forbidden\" (2.0.15+).",
        reason: "spec §17: a defect, not to be replicated.",
        edits: &[],
    },
    Deviation {
        id: "consistent-role-links",
        mosquitto: "Roles attached through the `roles` list of createClient, createGroup or \
                    modifyGroup have no back-reference: addRoleACL/removeRoleACL/deleteRole \
                    do not kick their holders and deleteRole leaves dangling references.",
        culex: "Links are always consistent: deleteRole removes every link and those commands \
                kick every holder however the role was attached.",
        reason: "spec §17: a memory-safety defect in 2.0.11.",
        edits: &[
            edit(
                Target::Behaviour("addRoleACL-via-group"),
                r#""victim_disconnect_reason":null"#,
                r#""victim_disconnect_reason":152"#,
            ),
            edit(
                Target::Behaviour("removeRoleACL-via-group"),
                r#""victim_disconnect_reason":null"#,
                r#""victim_disconnect_reason":152"#,
            ),
            edit(
                Target::Behaviour("addRoleACL-role-from-createClient"),
                r#""victim_disconnect_reason":null"#,
                r#""victim_disconnect_reason":152"#,
            ),
            edit(
                Target::Behaviour("addRoleACL-role-from-createGroup"),
                r#""victim_disconnect_reason":null"#,
                r#""victim_disconnect_reason":152"#,
            ),
        ],
    },
    Deviation {
        id: "modify-role-kicks",
        mosquitto: "modifyRole kicks nobody, even when it replaces the ACLs.",
        culex: "modifyRole with an `acls` array kicks the role's holders (Mosquitto 2.1).",
        reason: "spec §17 'kicking is safer': subscriptions made under the old ACLs go away.",
        edits: &[
            edit(
                Target::Behaviour("modifyRole-via-group"),
                r#""victim_disconnect_reason":null"#,
                r#""victim_disconnect_reason":152"#,
            ),
        ],
    },
    Deviation {
        id: "modify-group-kicks-old-members",
        mosquitto: "modifyGroup kicks the members after the change; members removed by a \
                    `clients` replacement are not kicked.",
        culex: "Members before and after the change are kicked (Mosquitto 2.0.15+).",
        reason: "A removed member loses the group's roles and must reconnect under the new rules.",
        edits: &[],
    },
    Deviation {
        id: "kick-after-response",
        mosquitto: "Kicks happen while the command runs, so an admin changing its own rights \
                    never receives the response.",
        culex: "handle_request returns the kicks; the broker publishes the response first and \
                kicks afterwards (Mosquitto 2.1).",
        reason: "spec §17.",
        edits: &[
            edit(
                Target::Behaviour("admin-kicks-itself"),
                r#""admin_received_response":false"#,
                r#""admin_received_response":true"#,
            ),
        ],
    },
    Deviation {
        id: "pattern-substitution",
        mosquitto: "`%c` and `%u` in ACL topics are matched literally \
                    [behaviour: pattern-substitution].",
        culex: "In publishClientSend, publishClientReceive, subscribePattern and \
                unsubscribePattern ACLs a level that is exactly `%c`/`%u` stands for the client \
                id/username (Mosquitto 2.1); the level must equal the value exactly, and an \
                empty or missing value or one containing `/`, `+` or `#` matches nothing.",
        reason: "Project decision (per-client topic trees); 2.1's default `sys-notify` role \
                 needs `%c`. Exact level equality avoids 2.1's prefix match.",
        edits: &[
            edit(Target::Behaviour("u-substituted"), r#""puback":135"#, r#""puback":16"#),
            edit(Target::Behaviour("u-literal"), r#""puback":16"#, r#""puback":135"#),
            edit(Target::Behaviour("c-substituted"), r#""puback":135"#, r#""puback":16"#),
        ],
    },
    Deviation {
        id: "save-per-request",
        mosquitto: "The file is rewritten after every successful modifying command, with the \
                    umask's permissions (0644) and no fsync.",
        culex: "ControlOutcome::changed asks for one save per request; the broker saves with \
                atomic_file::save_atomic (mode 0600, fsync, rename, directory fsync), as 2.1.",
        reason: "spec §17: crash safety and password-hash confidentiality.",
        edits: &[],
    },
    Deviation {
        id: "bootstrap-missing-file",
        mosquitto: "A missing file is an error and the plugin runs with an empty state.",
        culex: "A missing file is generated as Mosquitto 2.1 does (init file, then \
                MOSQUITTO_DYNSEC_PASSWORD, then random passwords in `<file>.pw`).",
        reason: "Project decision: a fresh broker must be administrable.",
        edits: &[],
    },
];

/// The deviation with this id.
pub fn deviation(id: &str) -> Option<&'static Deviation> {
    DEVIATIONS.iter().find(|d| d.id == id)
}
