# vpclab's Python runtime client: a small stand-in for AWS's awslambdaric.
#
# The daemon starts this file with the Lambda Runtime API on file descriptor 0 (a Unix
# socket, not TCP: the function runs in its own network namespace and has no network).
# It imports the handler named by _HANDLER ("file.function"), then loops: fetch the next
# event (GET .../invocation/next), call handler(event, context), post the result or the
# error. A line starting with \x1e tells the daemon that an invocation's output is
# complete; everything else on stdout/stderr is the function's log.
import importlib
import json
import os
import socket
import sys
import time
import traceback

API = "/2018-06-01/runtime"

_fd = os.dup(0)
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
_sock = socket.socket(fileno=_fd)
_rfile = _sock.makefile("rb")


def call(method, path, body=b"", headers=None):
    head = "%s %s HTTP/1.1\r\nHost: runtime\r\nContent-Length: %d\r\n" % (method, path, len(body))
    for k, v in (headers or {}).items():
        head += "%s: %s\r\n" % (k, v)
    _sock.sendall(head.encode() + b"\r\n" + body)
    status = _rfile.readline()
    if not status:
        sys.exit(0)
    hdrs = {}
    while True:
        line = _rfile.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    data = _rfile.read(int(hdrs.get("content-length", "0")))
    return int(status.split()[1]), hdrs, data


def log_error(kind, message, trace):
    # AWS's runtime writes an error as one log event; \r keeps it one line here.
    lines = ["[ERROR] %s: %s" % (kind, message)]
    if trace:
        lines.append("Traceback (most recent call last):")
        lines.extend(t.rstrip("\n") for t in trace)
    sys.stdout.write("\r".join(lines).replace("\n", "\r") + "\n")
    sys.stdout.flush()


def done(request_id):
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout.write("\x1e%s\n" % request_id)
    sys.stdout.flush()


def init_error(kind, message):
    log_error(kind, message, [])
    body = json.dumps({"errorMessage": message, "errorType": kind, "requestId": "", "stackTrace": []})
    done("init")
    call("POST", API + "/init/error", body.encode(), {"Lambda-Runtime-Function-Error-Type": kind})
    sys.exit(1)


class Context:
    def __init__(self, request_id, deadline_ms, arn):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def main():
    handler = os.environ.get("_HANDLER", "")
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", "."))
    if "." not in handler:
        init_error(
            "Runtime.MalformedHandlerName",
            "Bad handler '%s': not enough values to unpack (expected 2, got 1)" % handler,
        )
    modname, fname = handler.rsplit(".", 1)
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        init_error("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (modname, e))
    except SyntaxError as e:
        init_error("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (modname, e))
    except Exception as e:
        init_error(type(e).__name__, str(e))
    fn = getattr(module, fname, None)
    if fn is None:
        init_error(
            "Runtime.HandlerNotFound",
            "Handler '%s' missing on module '%s'" % (fname, modname),
        )
    while True:
        _, hdrs, body = call("GET", API + "/invocation/next")
        rid = hdrs.get("lambda-runtime-aws-request-id", "")
        deadline = int(hdrs.get("lambda-runtime-deadline-ms", "0"))
        ctx = Context(rid, deadline, hdrs.get("lambda-runtime-invoked-function-arn", ""))
        try:
            event = json.loads(body) if body else None
            result = fn(event, ctx)
            try:
                out = json.dumps(result).encode()
            except Exception as e:
                kind, message = "Runtime.MarshalError", "Unable to marshal response: %s" % e
                log_error(kind, message, [])
                err = {"errorMessage": message, "errorType": kind, "requestId": rid, "stackTrace": []}
                done(rid)
                call("POST", "%s/invocation/%s/error" % (API, rid), json.dumps(err).encode(),
                     {"Lambda-Runtime-Function-Error-Type": kind})
                continue
            done(rid)
            call("POST", "%s/invocation/%s/response" % (API, rid), out)
        except Exception as e:
            trace = traceback.format_list(traceback.extract_tb(e.__traceback__)[1:])
            log_error(type(e).__name__, str(e), trace)
            err = {
                "errorMessage": str(e),
                "errorType": type(e).__name__,
                "requestId": rid,
                "stackTrace": trace,
            }
            done(rid)
            call("POST", "%s/invocation/%s/error" % (API, rid), json.dumps(err).encode(),
                 {"Lambda-Runtime-Function-Error-Type": "Unhandled"})


main()
