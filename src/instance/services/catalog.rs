//! The package and service catalog: which packages each image's mirror offers (name,
//! version, download size, as `dnf`/`apt` print them), the web server units those
//! packages bring (document root, `Server` header, index files), the binaries a package
//! puts on the `PATH`, and the files installing a package writes.
//!
//! Data only; the commands that read it live in the sibling modules.

use std::collections::BTreeSet;

use crate::instance::InstanceState;
use crate::instance::image::Image;
use crate::instance::vfs::Cred;

/// A package the mirror offers: name, version string, size.
pub(crate) struct Pkg {
    pub name: &'static str,
    pub version: &'static str,
    pub size: &'static str,
}

pub(crate) const AL_PKGS: &[Pkg] = &[
    Pkg {
        name: "httpd",
        version: "2.4.62-1.amzn2023",
        size: "48 k",
    },
    Pkg {
        name: "nginx",
        version: "1:1.24.0-1.amzn2023.0.4",
        size: "33 k",
    },
    Pkg {
        name: "git",
        version: "2.40.1-1.amzn2023.0.3",
        size: "54 k",
    },
    Pkg {
        name: "tree",
        version: "1.8.0-6.amzn2023.0.2",
        size: "56 k",
    },
    Pkg {
        name: "htop",
        version: "3.2.1-87.amzn2023.0.3",
        size: "184 k",
    },
    Pkg {
        name: "jq",
        version: "1.7.1-49.amzn2023",
        size: "188 k",
    },
    Pkg {
        name: "telnet",
        version: "1:0.17-85.amzn2023.0.2",
        size: "64 k",
    },
    Pkg {
        name: "nmap-ncat",
        version: "3:7.93-1.amzn2023.0.1",
        size: "219 k",
    },
    Pkg {
        name: "bind-utils",
        version: "32:9.18.28-1.amzn2023.0.1",
        size: "215 k",
    },
    Pkg {
        name: "mariadb105",
        version: "3:10.5.25-1.amzn2023.0.1",
        size: "1.6 M",
    },
    Pkg {
        name: "php",
        version: "8.3.10-1.amzn2023.0.1",
        size: "11 k",
    },
    Pkg {
        name: "python3-pip",
        version: "21.3.1-2.amzn2023.0.8",
        size: "1.8 M",
    },
    Pkg {
        name: "tmux",
        version: "3.2a-3.amzn2023.0.2",
        size: "469 k",
    },
    Pkg {
        name: "stress",
        version: "1.0.4-29.amzn2023.0.2",
        size: "37 k",
    },
    Pkg {
        name: "stress-ng",
        version: "0.17.08-1.amzn2023.0.1",
        size: "2.9 M",
    },
    Pkg {
        name: "mod_ssl",
        version: "1:2.4.62-1.amzn2023",
        size: "111 k",
    },
    Pkg {
        name: "php-mysqlnd",
        version: "8.3.10-1.amzn2023.0.1",
        size: "152 k",
    },
    Pkg {
        name: "php-fpm",
        version: "8.3.10-1.amzn2023.0.1",
        size: "1.8 M",
    },
    Pkg {
        name: "mariadb105-server",
        version: "3:10.5.25-1.amzn2023.0.1",
        size: "9.9 M",
    },
    Pkg {
        name: "amazon-efs-utils",
        version: "2.1.0-1.amzn2023",
        size: "59 k",
    },
    Pkg {
        name: "nodejs",
        version: "1:18.20.4-1.amzn2023.0.1",
        size: "13 M",
    },
    Pkg {
        name: "unzip",
        version: "6.0-57.amzn2023.0.2",
        size: "182 k",
    },
    Pkg {
        name: "docker",
        version: "25.0.6-1.amzn2023.0.2",
        size: "44 M",
    },
];

pub(crate) const UBUNTU_PKGS: &[Pkg] = &[
    Pkg {
        name: "nginx",
        version: "1.24.0-2ubuntu7.1",
        size: "520 kB",
    },
    Pkg {
        name: "apache2",
        version: "2.4.58-1ubuntu8.5",
        size: "90.2 kB",
    },
    Pkg {
        name: "git",
        version: "1:2.43.0-1ubuntu7.1",
        size: "3679 kB",
    },
    Pkg {
        name: "tree",
        version: "2.1.1-2ubuntu3",
        size: "47.7 kB",
    },
    Pkg {
        name: "htop",
        version: "3.3.0-4build1",
        size: "171 kB",
    },
    Pkg {
        name: "jq",
        version: "1.7.1-3build1",
        size: "65.7 kB",
    },
    Pkg {
        name: "mysql-server",
        version: "8.0.40-0ubuntu0.24.04.1",
        size: "9412 B",
    },
    Pkg {
        name: "php",
        version: "2:8.3+93ubuntu2",
        size: "4208 B",
    },
    Pkg {
        name: "python3-pip",
        version: "24.0+dfsg-1ubuntu1.1",
        size: "1317 kB",
    },
    Pkg {
        name: "stress",
        version: "1.0.7-1",
        size: "18.3 kB",
    },
    Pkg {
        name: "stress-ng",
        version: "0.17.06-1build1",
        size: "2486 kB",
    },
    Pkg {
        name: "php-mysql",
        version: "2:8.3+93ubuntu2",
        size: "1834 B",
    },
    Pkg {
        name: "mysql-client",
        version: "8.0.40-0ubuntu0.24.04.1",
        size: "9390 B",
    },
    Pkg {
        name: "unzip",
        version: "6.0-28ubuntu4.1",
        size: "174 kB",
    },
    Pkg {
        name: "docker.io",
        version: "26.1.3-0ubuntu1~24.04.1",
        size: "33.3 MB",
    },
];

/// A web server unit: port 80, a document root, the `Server` header.
pub(crate) struct WebUnit {
    pub docroot: &'static str,
    pub server: &'static str,
    pub index: &'static [&'static str],
    pub description: &'static str,
}

pub(crate) fn web_unit(image: Image, unit: &str) -> Option<WebUnit> {
    match (image, unit) {
        (Image::AmazonLinux2023, "httpd") => Some(WebUnit {
            docroot: "/var/www/html",
            server: "Apache/2.4.62 (Amazon Linux)",
            index: &["index.html"],
            description: "The Apache HTTP Server",
        }),
        (Image::AmazonLinux2023, "nginx") => Some(WebUnit {
            docroot: "/usr/share/nginx/html",
            server: "nginx/1.24.0",
            index: &["index.html"],
            description: "The nginx HTTP and reverse proxy server",
        }),
        (Image::Ubuntu2404, "nginx") => Some(WebUnit {
            docroot: "/var/www/html",
            server: "nginx/1.24.0 (Ubuntu)",
            index: &["index.html", "index.htm", "index.nginx-debian.html"],
            description: "A high performance web server and a reverse proxy server",
        }),
        (Image::Ubuntu2404, "apache2") => Some(WebUnit {
            docroot: "/var/www/html",
            server: "Apache/2.4.58 (Ubuntu)",
            index: &["index.html"],
            description: "The Apache HTTP Server",
        }),
        _ => None,
    }
}

/// Whether an installed package provides `binary` (for `which`).
pub fn installed_binary(packages: &BTreeSet<String>, binary: &str) -> bool {
    packages.contains(binary)
        || (binary == "apachectl" && packages.contains("httpd"))
        || (binary == "mysql"
            && packages
                .iter()
                .any(|p| p.starts_with("mariadb") || p.starts_with("mysql")))
}

/// Installs a package's files (as the package would).
pub(super) fn install_files(inst: &InstanceState, image: Image, pkg: &str) {
    let mut disk = inst.lock_disk();
    disk.packages.insert(pkg.to_string());
    let root = Cred::ROOT;
    match (image, pkg) {
        (Image::AmazonLinux2023, "httpd") => {
            disk.fs.install_dir("/var/www/html", 0o755, root);
            disk.fs.install_dir("/var/www/cgi-bin", 0o755, root);
            disk.fs.install(
                "/etc/httpd/conf/httpd.conf",
                b"ServerRoot \"/etc/httpd\"\nListen 80\nDocumentRoot \"/var/www/html\"\n",
                0o644,
                root,
            );
            disk.fs.install_dir("/var/log/httpd", 0o700, root);
        }
        (Image::AmazonLinux2023, "nginx") => {
            disk.fs.install(
                "/usr/share/nginx/html/index.html",
                NGINX_WELCOME.as_bytes(),
                0o644,
                root,
            );
            disk.fs.install("/etc/nginx/nginx.conf", b"user nginx;\nhttp {\n    server {\n        listen 80;\n        root /usr/share/nginx/html;\n    }\n}\n", 0o644, root);
            disk.fs.install_dir("/var/log/nginx", 0o711, root);
        }
        (Image::Ubuntu2404, "nginx") => {
            disk.fs.install(
                "/var/www/html/index.nginx-debian.html",
                NGINX_WELCOME.as_bytes(),
                0o644,
                root,
            );
            disk.fs.install("/etc/nginx/sites-available/default", b"server {\n\tlisten 80 default_server;\n\troot /var/www/html;\n\tindex index.html index.htm index.nginx-debian.html;\n}\n", 0o644, root);
            disk.fs.install_dir("/var/log/nginx", 0o755, root);
        }
        (Image::Ubuntu2404, "apache2") => {
            if !disk.fs.exists("/var/www/html/index.html") {
                disk.fs.install("/var/www/html/index.html", b"<html><head><title>Apache2 Ubuntu Default Page: It works</title></head><body><h1>Apache2 Default Page</h1><p>It works!</p></body></html>\n", 0o644, root);
            }
            disk.fs.install_dir("/var/log/apache2", 0o750, root);
        }
        _ => {}
    }
}

const NGINX_WELCOME: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and\nworking. Further configuration is required.</p>\n</body>\n</html>\n";
