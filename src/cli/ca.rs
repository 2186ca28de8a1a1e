//! `vpclab ca`: prints vpclab's certificate authority (PEM), which signs the simulated
//! internet's HTTPS, for a learner who wants a browser or a tool on their own machine
//! to trust it. Created in the state directory the first time it is needed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::daemon::StateDir;

#[derive(Debug, Args)]
pub struct CaArgs {
    /// The daemon's state directory (default: your data directory).
    #[arg(long, env = "VPCLAB_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

pub fn run(args: CaArgs) -> anyhow::Result<ExitCode> {
    let state = match args.state_dir {
        Some(d) => StateDir::new(d),
        None => StateDir::default_location()?,
    };
    let cert = state.ca_cert_file();
    let ca = crate::tls::Ca::load_or_create(&cert, &state.ca_key_file())?;
    crate::cli::out!("{}", ca.cert_pem())?;
    // Where it goes, on stderr so that `vpclab ca > vpclab-ca.pem` keeps only the PEM.
    eprintln!(
        "vpclab: this is vpclab's own certificate authority ({}); its key never leaves this machine.\n\
         vpclab: to trust it: Firefox, Settings > Privacy & Security > Certificates > Import;\n\
         vpclab:   Chrome/Linux, Settings > Privacy and security > Security > Manage certificates > Authorities > Import;\n\
         vpclab:   Debian/Ubuntu, save it as /usr/local/share/ca-certificates/vpclab-ca.crt and run update-ca-certificates;\n\
         vpclab:   curl, --cacert vpclab-ca.pem.",
        cert.display()
    );
    Ok(ExitCode::SUCCESS)
}
