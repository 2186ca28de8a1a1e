"""A fork server for the real aws CLI, used by the test suite (scripts/test).

Every `aws` call of the tests pays Python's start-up and the import of awscli and
botocore (about 0.6 s of CPU each, over a second on a busy 2-core CI machine) before it
sends one request. This server imports awscli once, loads the service models the tests
use into one shared botocore loader, and then forks a child per call that runs awscli's
own `main()` with the caller's argv, environment, working directory and standard
streams (passed over a unix socket with SCM_RIGHTS). The code that builds, signs and
sends each request, and parses and prints each answer, is the real aws CLI's; only the
interpreter start-up is shared. `VPCLAB_AWS_DIRECT=1` bypasses it (see ./aws).

Usage: python3 server.py SOCKET_PATH   (runs until killed; removes the socket on exit)
"""

import json
import os
import signal
import socket
import struct
import sys

import awscli.clidriver
import botocore.loaders
import botocore.session

SERVICES = [
    "ec2", "route53", "logs", "sts", "iam", "s3", "dynamodb", "ssm", "cloudwatch",
    "sns", "elbv2", "autoscaling", "ecs", "ecr", "lambda",
]


# What `import awscli` made of the server's own AWS_DATA_PATH: awscli's data folder
# after any paths the environment named.
AWSCLI_DATA = os.path.join(os.path.dirname(os.path.abspath(awscli.__file__)), "data")
DEFAULT_DATA_PATH = os.environ["AWS_DATA_PATH"]


def data_path_for(env):
    """AWS_DATA_PATH as `import awscli` sets it for a caller with environment `env`."""
    paths = []
    if "AWS_DATA_PATH" in env:
        for path in env["AWS_DATA_PATH"].split(os.pathsep):
            paths.append(os.path.expanduser(os.path.expandvars(path)))
    paths.append(AWSCLI_DATA)
    return os.pathsep.join(paths)


def warm_loader():
    """One loader for every call with awscli's default data path, with the data the
    tests need already parsed."""
    shared = botocore.loaders.create_loader
    loader = shared(DEFAULT_DATA_PATH)
    for name in ["endpoints", "partitions", "_retry", "sdk-default-configuration", "cli"]:
        try:
            loader.load_data(name)
        except Exception:
            pass
    for service in SERVICES:
        for kind in ["service-2", "paginators-1", "waiters-2"]:
            try:
                loader.load_service_model(service, kind)
            except Exception:
                pass

    def create_loader(search_path_string=None):
        if search_path_string == DEFAULT_DATA_PATH:
            return loader
        return shared(search_path_string)

    botocore.session.create_loader = create_loader
    # Build a driver's command table once, so its modules and data are loaded too.
    try:
        awscli.clidriver.create_clidriver()._get_command_table()
    except Exception:
        pass


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def run_call(conn):
    """In the forked child: take the caller's streams and context, run the CLI, answer rc."""
    header, fds, _, _ = socket.recv_fds(conn, 8, 3)
    if len(header) < 8 or len(fds) != 3:
        os._exit(70)
    (length,) = struct.unpack("!Q", header)
    ctx = json.loads(recv_exact(conn, length))
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(ctx["env"])
    os.environ["AWS_DATA_PATH"] = data_path_for(ctx["env"])
    os.chdir(ctx["cwd"])
    sys.argv = ["aws"] + ctx["argv"]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        rc = awscli.clidriver.main()
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - the CLI's own crash output, as `aws` prints it
        import traceback

        traceback.print_exc()
        rc = 255
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    conn.sendall(struct.pack("!i", rc if isinstance(rc, int) else 0))
    os._exit(0)


def main():
    path = sys.argv[1]
    warm_loader()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel

    def stop(*_):
        try:
            os.unlink(path)
        finally:
            os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            server.close()
            try:
                run_call(conn)
            finally:
                os._exit(70)
        conn.close()


if __name__ == "__main__":
    main()
