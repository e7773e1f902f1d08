#!/usr/bin/env python3
"""A small LTI 1.3 platform for interop tests, built on the independent PyPI
package `lti1p3platform` (its OIDC login initiation, launch message and
RS256 signing). Coursegate's test suite starts it with:

    python3 tests/interop/platform.py --tool-base http://127.0.0.1:<port>

It prints one JSON line on stdout with what the tool must register
(issuer, client_id, deployment_id, auth/jwks URLs, port), then serves:

    GET /jwks                      the platform's public key set
    GET /start?user=<id>&course=<slug>
                                   login initiation: 302 to the tool's /lti/login
    GET or POST /auth              the OIDC authorisation endpoint: validates the
                                   tool's request and answers the auto-posting
                                   launch form (id_token + state) for the tool's
                                   redirect_uri
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

from jwcrypto.jwk import JWK  # a dependency of lti1p3platform
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request

ISSUER = "https://interop-platform.example"
CLIENT_ID = "coursegate-interop-client"
DEPLOYMENT_ID = "interop-deployment-1"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"

KEY = JWK.generate(kty="RSA", size=2048)
PRIVATE_PEM = KEY.export_to_pem(private_key=True, password=None).decode()
PUBLIC_PEM = KEY.export_to_pem().decode()
STATE = {"tool_base": None}


class PlatformConf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs):
        pass

    def get_registration_by_params(self, **kwargs):
        tool = STATE["tool_base"]
        return (
            Registration()
            .set_iss(ISSUER)
            .set_client_id(CLIENT_ID)
            .set_deployment_id(DEPLOYMENT_ID)
            .set_launch_url(tool + "/lti/launch")
            .set_oidc_login_url(tool + "/lti/login")
            .set_tool_key_set_url(tool + "/.well-known/jwks.json")
            .set_platform_public_key(PUBLIC_PEM)
            .set_platform_private_key(PRIVATE_PEM)
        )


class PlainRequest(Request):
    def build_metadata(self, request):
        return request


class Login(OIDCLoginAbstract):
    def set_lti_message_hint(self, **kwargs):
        self._lti_message_hint = json.dumps(kwargs)

    def get_redirect(self, url):
        return url


class Launch(LTIAdvantageMessageLaunchAbstract):
    def render_launch_form(self, launch_data, **kwargs):
        return launch_data


def escape(s):
    return (
        str(s)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("platform.py: " + (fmt % args) + "\n")

    def send(self, status, body, ctype="text/html; charset=utf-8", headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.handle_request(dict(parse_qsl(urlparse(self.path).query)), {})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(n).decode()))
        self.handle_request(dict(parse_qsl(urlparse(self.path).query)), form)

    def handle_request(self, query, form):
        path = urlparse(self.path).path
        conf = PlatformConf()
        conf.get_registration()
        try:
            if path == "/jwks":
                self.send(200, json.dumps(conf.get_jwks()), "application/json")
            elif path == "/start":
                req = PlainRequest({"method": "GET", "get_data": query, "form_data": {}})
                login = Login(req, conf)
                login.set_lti_message_hint(course=query.get("course", "intro"))
                url = login.initiate_login(query.get("user", "py-learner-1"))
                self.send(302, "", headers=[("Location", url)])
            elif path == "/auth":
                data = dict(query)
                data.update(form)
                req = PlainRequest(
                    {"method": self.command, "get_data": query, "form_data": form}
                )
                # The spec's required values of the authentication request.
                for k, v in (
                    ("scope", "openid"),
                    ("response_type", "id_token"),
                    ("response_mode", "form_post"),
                    ("prompt", "none"),
                ):
                    if data.get(k) != v:
                        return self.send(400, "bad " + k, "text/plain")
                if data.get("redirect_uri") != STATE["tool_base"] + "/lti/launch":
                    return self.send(400, "unregistered redirect_uri", "text/plain")
                hint = json.loads(data.get("lti_message_hint") or "{}")
                launch = Launch(req, conf)
                launch.set_user_data(
                    data.get("login_hint", "py-learner-1"),
                    [LEARNER],
                    full_name="Grace Hopper",
                    email_address="grace@example.edu",
                )
                launch.set_resource_link_claim("py-link-1", title="Interop link")
                launch.set_launch_context_claim(
                    "py-course-1", context_title="Interop course", context_label="IO101"
                )
                launch.set_launch_presentation_claim(document_target="iframe")
                launch.set_custom_parameters_claim({"course": hint.get("course", "intro")})
                out = launch.lti_launch()
                page = (
                    '<!doctype html><form id="f" method="post" action="%s">'
                    '<input type="hidden" name="id_token" value="%s">'
                    '<input type="hidden" name="state" value="%s"></form>'
                    "<script>document.getElementById('f').submit()</script>"
                    % (escape(out["launch_url"]), escape(out["id_token"]), escape(out["state"]))
                )
                self.send(200, page)
            else:
                self.send(404, "not found", "text/plain")
        except Exception as e:  # shown to the test, which fails with it
            self.send(500, "platform error: %r" % (e,), "text/plain")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool-base", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    STATE["tool_base"] = args.tool_base.rstrip("/")
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = srv.server_address[1]
    base = "http://127.0.0.1:%d" % port
    print(
        json.dumps(
            {
                "port": port,
                "issuer": ISSUER,
                "client_id": CLIENT_ID,
                "deployment_id": DEPLOYMENT_ID,
                "auth_url": base + "/auth",
                "jwks_url": base + "/jwks",
                "start_url": base + "/start",
            }
        ),
        flush=True,
    )
    # Stop when the test closes our stdin (the test process went away).
    threading.Thread(target=lambda: (sys.stdin.read(), srv.shutdown()), daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
