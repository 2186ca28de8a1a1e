//! The container images vpclab runs (it has no container engine): each known image is
//! a small built-in behaviour — the port it listens on, the lines it prints at start,
//! the tools a health check may call inside it. Everything else "runs" as a container
//! that prints why vpclab cannot run it and exits, which stops its task the way an
//! essential container that exits does on ECS.
//!
//! Images are matched by repository, any tag or digest, from any registry that serves
//! the official image: `nginx`, `nginx:1.27`, `docker.io/library/nginx`,
//! `public.ecr.aws/nginx/nginx`, `public.ecr.aws/docker/library/httpd`.

use serde::{Deserialize, Serialize};

use super::TaskContainer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Known {
    /// The official nginx image (Debian based: has `curl`).
    Nginx,
    /// The official httpd image (Debian slim: neither `curl` nor `wget`).
    Httpd,
    /// `busybox`: a shell with `wget`, no `curl`; exits at once unless told to wait.
    Busybox,
    /// `nginxdemos/hello`: a page naming the server's address and host name.
    NginxHello,
    /// `hashicorp/http-echo`: answers every request with its `-text` (port 5678); a
    /// scratch image with no shell.
    HttpEcho,
}

/// The repository path without registry, tag or digest, and without the
/// `library/`/`docker/library/` prefixes of official images.
pub fn repository(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or(image);
    let mut parts: Vec<&str> = no_digest.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            parts.remove(0);
        }
    }
    let mut path = parts.join("/");
    // The tag is after the last ':' of the last component.
    if let Some((repo, tag)) = path.rsplit_once(':')
        && !repo.is_empty()
        && !tag.contains('/')
    {
        path = repo.to_string();
    }
    for prefix in ["docker/library/", "library/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            path = rest.to_string();
        }
    }
    path
}

/// What vpclab runs for `image`, if anything.
pub fn known(image: &str) -> Option<Known> {
    match repository(image).as_str() {
        "nginx" | "nginx/nginx" => Some(Known::Nginx),
        "httpd" => Some(Known::Httpd),
        "busybox" => Some(Known::Busybox),
        "nginxdemos/hello" => Some(Known::NginxHello),
        "hashicorp/http-echo" => Some(Known::HttpEcho),
        _ => None,
    }
}

impl Known {
    /// The commands a health check can find on the image's PATH (besides the shell's
    /// own `exit`, `true`, `false`, `echo`).
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Known::Nginx => &["curl", "nginx"],
            Known::Httpd => &["httpd"],
            Known::Busybox => &["wget", "nc"],
            Known::NginxHello => &["wget", "nginx"],
            Known::HttpEcho => &[],
        }
    }

    pub fn has_shell(self) -> bool {
        self != Known::HttpEcho
    }

    /// The TCP ports the image serves, given its command.
    pub fn ports(self, command: &[String]) -> Vec<u16> {
        match self {
            Known::Nginx | Known::Httpd | Known::NginxHello => vec![80],
            Known::HttpEcho => {
                let port = command
                    .iter()
                    .find_map(|a| a.strip_prefix("-listen=").or(a.strip_prefix("--listen=")))
                    .and_then(|l| l.rsplit(':').next())
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(5678);
                vec![port]
            }
            Known::Busybox => Vec::new(),
        }
    }

    /// Whether the image's server answers `path` with 200.
    pub fn serves(self, path: &str) -> bool {
        match self {
            Known::Nginx | Known::Httpd => matches!(path, "" | "/" | "/index.html"),
            Known::NginxHello | Known::HttpEcho => true,
            Known::Busybox => false,
        }
    }
}

/// Whether `command` keeps busybox alive (a sleep, an endless loop, `tail -f`).
fn busybox_waits(command: &[String]) -> bool {
    let all = command.join(" ");
    all.contains("sleep") || all.contains("while true") || all.contains("tail -f")
}

/// What a container prints when it starts, and its exit code if it exits at once.
pub fn start_output(c: &TaskContainer) -> (Vec<String>, Option<i32>) {
    match c.known {
        Some(Known::Nginx) | Some(Known::NginxHello) => (
            vec![
                "/docker-entrypoint.sh: /docker-entrypoint.d/ is not empty, will attempt to perform configuration".into(),
                "/docker-entrypoint.sh: Looking for shell scripts in /docker-entrypoint.d/".into(),
                "/docker-entrypoint.sh: Configuration complete; ready for start up".into(),
            ],
            None,
        ),
        Some(Known::Httpd) => (
            vec!["[mpm_event:notice] [pid 1:tid 1] AH00489: Apache/2.4.62 (Unix) configured -- resuming normal operations".into()],
            None,
        ),
        Some(Known::HttpEcho) => {
            let port = Known::HttpEcho.ports(&c.command)[0];
            (
                vec![format!("[INFO] server is listening on :{port}")],
                None,
            )
        }
        Some(Known::Busybox) => {
            if busybox_waits(&c.command) {
                (Vec::new(), None)
            } else {
                // Its default command is `sh`, which exits at once without a terminal.
                (Vec::new(), Some(0))
            }
        }
        None => (
            vec![format!(
                "vpclab: cannot run the image {}: vpclab has no container engine and runs only nginx, httpd, busybox, nginxdemos/hello and hashicorp/http-echo (docs/compute.md)",
                c.image
            )],
            Some(1),
        ),
    }
}

/// Evaluates a container health check's command against what the image has:
/// `CMD-SHELL curl -f http://localhost/ || exit 1` passes in nginx (it has curl and
/// serves `/`), fails in busybox (no curl) and in httpd (neither curl nor wget).
pub fn health_check_passes(image: Known, command: &[String], all: &[TaskContainer]) -> bool {
    let (shell, words): (bool, Vec<String>) = match command.first().map(String::as_str) {
        Some("CMD-SHELL") => (
            true,
            command
                .get(1)
                .map(|s| {
                    // Only the part before `||`: the fallback is `exit 1` in practice.
                    s.split("||")
                        .next()
                        .unwrap_or("")
                        .split_whitespace()
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Some("CMD") => (false, command[1..].to_vec()),
        _ => (false, command.to_vec()),
    };
    if shell && !image.has_shell() {
        return false;
    }
    let Some(tool) = words.first() else {
        return false;
    };
    let tool = tool.rsplit('/').next().unwrap_or(tool);
    match tool {
        "true" => return true,
        "false" => return false,
        "exit" => return words.get(1).is_none_or(|c| c == "0"),
        _ => {}
    }
    if !image.tools().contains(&tool) {
        return false;
    }
    if !matches!(tool, "curl" | "wget") {
        return true;
    }
    let Some(url) = words.iter().find(|w| w.starts_with("http://")) else {
        return false;
    };
    let rest = &url["http://".len()..];
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().unwrap_or(0)),
        None => (hostport, 80),
    };
    if !matches!(host, "localhost" | "127.0.0.1") {
        return false;
    }
    // Containers of a task share its network namespace: any of them may answer.
    all.iter().any(|c| {
        c.known
            .is_some_and(|k| k.ports(&c.command).contains(&port) && k.serves(path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_match_by_repository_from_any_registry_and_tag() {
        assert_eq!(known("nginx"), Some(Known::Nginx));
        assert_eq!(known("nginx:1.27-alpine"), Some(Known::Nginx));
        assert_eq!(known("docker.io/library/nginx:latest"), Some(Known::Nginx));
        assert_eq!(known("public.ecr.aws/nginx/nginx"), Some(Known::Nginx));
        assert_eq!(
            known("public.ecr.aws/docker/library/httpd:2.4"),
            Some(Known::Httpd)
        );
        assert_eq!(known("busybox@sha256:abc"), Some(Known::Busybox));
        assert_eq!(known("localhost:5000/nginx"), Some(Known::Nginx));
        assert_eq!(
            known("123456789012.dkr.ecr.us-east-1.amazonaws.com/chat-app"),
            None
        );
        assert_eq!(known("mycompany/nginx-custom"), None);
    }

    fn container(k: Known) -> TaskContainer {
        TaskContainer {
            name: "c".into(),
            image: "x".into(),
            known: Some(k),
            essential: true,
            last_status: "RUNNING".into(),
            exit_code: None,
            reason: None,
            health: "UNKNOWN".into(),
            ports: vec![],
            log: None,
            command: vec![],
            pull_error: None,
            unhealthy_at: None,
        }
    }

    fn cmd(s: &str) -> Vec<String> {
        vec!["CMD-SHELL".into(), s.into()]
    }

    #[test]
    fn health_checks_use_only_the_tools_the_image_has() {
        let nginx = [container(Known::Nginx)];
        let check = cmd("curl -f http://localhost/ || exit 1");
        assert!(health_check_passes(Known::Nginx, &check, &nginx));
        // A path nginx answers 404 for fails `curl -f`.
        assert!(!health_check_passes(
            Known::Nginx,
            &cmd("curl -f http://localhost/health || exit 1"),
            &nginx
        ));
        // Nothing listens on 4000.
        assert!(!health_check_passes(
            Known::Nginx,
            &cmd("curl -f http://localhost:4000/ || exit 1"),
            &nginx
        ));
        let busy = [container(Known::Busybox), container(Known::Nginx)];
        assert!(!health_check_passes(Known::Busybox, &check, &busy));
        assert!(health_check_passes(
            Known::Busybox,
            &cmd("wget -q -O - http://localhost/ || exit 1"),
            &busy
        ));
        assert!(!health_check_passes(
            Known::Httpd,
            &check,
            &[container(Known::Httpd)]
        ));
        assert!(!health_check_passes(
            Known::HttpEcho,
            &cmd("exit 0"),
            &[container(Known::HttpEcho)]
        ));
    }
}
