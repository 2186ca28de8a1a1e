//! `vpclab mail [--follow] [--json]`: the local mailbox that SNS `email` and
//! `email-json` subscriptions deliver to (subscription confirmations first, as AWS sends
//! them, then notifications such as CloudWatch alarms). Read from the state database,
//! read-only beside a running daemon, like `vpclab status`; `--follow` polls it every
//! second for new messages.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::daemon::StateDir;
use crate::model::Control;
use crate::model::sns::Mail;

#[derive(Debug, Args)]
pub struct MailArgs {
    /// The daemon's state directory (default: your data directory).
    #[arg(long, env = "VPCLAB_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep printing new messages as they arrive (Ctrl-C to stop).
    #[arg(long, short)]
    pub follow: bool,
    /// One JSON object per message and line.
    #[arg(long)]
    pub json: bool,
}

/// Every account's messages, oldest first.
fn read_all(dir: &StateDir) -> anyhow::Result<Vec<(String, Mail)>> {
    let paths = dir.store();
    if !paths.db.exists() {
        return Ok(Vec::new());
    }
    let control = Control::open_read_only(&paths)
        .with_context(|| format!("cannot read {}", paths.db.display()))?;
    let mut out = Vec::new();
    for account in control.accounts() {
        if let Some(w) = control.snapshot(&account) {
            out.extend(w.sns_mail.iter().map(|m| (account.clone(), m.clone())));
        }
    }
    out.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    Ok(out)
}

fn print(account: &str, m: &Mail, json: bool) -> std::io::Result<()> {
    let at = crate::model::Timestamp(m.at).iso();
    if json {
        let v = serde_json::json!({
            "id": m.id,
            "account": account,
            "date": at,
            "to": m.to,
            "protocol": m.protocol,
            "topic": m.topic,
            "subject": m.subject,
            "type": m.kind,
            "delivered": m.delivered,
            "body": m.body,
        });
        return crate::cli::outln!("{v}");
    }
    crate::cli::outln!("From: AWS Notifications <no-reply@sns.amazonaws.com>")?;
    crate::cli::outln!("To: {}", m.to)?;
    crate::cli::outln!("Date: {at}")?;
    crate::cli::outln!("Subject: {}", m.subject)?;
    crate::cli::outln!("X-Topic: {}", m.topic)?;
    if !m.delivered {
        crate::cli::outln!(
            "X-Note: not sent — vpclab does not POST {} notifications yet (docs/fidelity.md)",
            m.protocol
        )?;
    }
    crate::cli::outln!()?;
    crate::cli::outln!("{}", m.body.trim_end())?;
    crate::cli::outln!()
}

pub fn run(args: MailArgs) -> anyhow::Result<ExitCode> {
    let dir = match args.state_dir {
        Some(d) => StateDir::new(d),
        None => StateDir::default_location()?,
    };
    let mut seen = BTreeSet::new();
    let first = read_all(&dir)?;
    if first.is_empty() && !args.follow && !args.json {
        crate::cli::outln!(
            "no mail (subscribe an email address to an SNS topic, then confirm it)"
        )?;
    }
    for (account, m) in first {
        print(&account, &m, args.json)?;
        seen.insert(m.id);
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
        for (account, m) in read_all(&dir)? {
            if seen.insert(m.id.clone()) {
                print(&account, &m, args.json)?;
            }
        }
    }
}
