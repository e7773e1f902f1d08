#!/usr/bin/env python3
"""A small LTI 1.3 platform for interop tests, built on the independent PyPI
package `lti1p3platform` (its OIDC login initiation, launch messages with the
Deep Linking, AGS and NRPS claims, RS256 signing, Deep Linking response
validation, client-credentials token issuing and validation, and its AGS and
NRPS service handlers). Coursegate's test suite starts it with:

    python3 tests/interop/platform.py --tool-base http://127.0.0.1:<port>

It prints one JSON line on stdout with what the tool must register
(issuer, client_id, deployment_id, auth/token/jwks URLs, port), then serves:

    GET /jwks                      the platform's public key set
    GET /start?user=<id>&course=<slug>&role=learner|instructor
              &message=launch|deep_link&link=<id>
                                   login initiation: 302 to the tool's /lti/login.
                                   `link` launches a link created from a Deep
                                   Linking response (its custom parameters and
                                   line item); `message=deep_link` starts a Deep
                                   Linking request
    GET or POST /auth              the OIDC authorisation endpoint: validates the
                                   tool's request and answers the auto-posting
                                   launch form (id_token + state) for the tool's
                                   redirect_uri
    POST /deep_link/return         the Deep Linking return URL: the package's
                                   validate_deeplinking_resp (signature against
                                   the tool's JWKS, message type, item types),
                                   plus the claims the package leaves to the
                                   platform (aud, iss, deployment_id, data, nonce,
                                   the registered launch URL); each accepted
                                   ltiResourceLink becomes a link, with a line
                                   item when it carries `lineItem`
    POST /token                    client credentials (the package's get_access_token)
    /lineitems, /lineitems/<n>/lineitem, …/scores, …/results
                                   AGS, through the package's AssignmentsGradesService
                                   handlers (token and scope checks, methods, media
                                   types); scores not newer than the stored one get
                                   409 (as Moodle does)
    GET /memberships               NRPS, through the package's
                                   NamesRoleProvisioningService (paged with
                                   `limit`, `next` turned into a Link header)
    GET /recorded                  what the platform accepted (for the test)
    POST /members                  sets the context's members (JSON list)

With `--state FILE` the data survives a restart on the same `--port` (a new
process signs with a new key, so tokens issued before are refused).

The package ships no HTTP server for the services: this file maps HTTP
requests onto its handler classes and keeps the data they manage in memory.
"""

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

import jwt  # PyJWT, a dependency of lti1p3platform
from jwcrypto.jwk import JWK  # a dependency of lti1p3platform
from lti1p3platform.exceptions import LineItemNotFoundException, LtiException
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.membership import Context
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request
from lti1p3platform.response import Response, generate_next_link
from lti1p3platform.score import UpdateScoreStatus
from lti1p3platform.service_connector import (
    AssignmentsGradesService,
    NamesRoleProvisioningService,
)

ISSUER = "https://interop-platform.example"
CLIENT_ID = "coursegate-interop-client"
DEPLOYMENT_ID = "interop-deployment-1"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
DL_DATA = "interop-dl-data-7"
CONTEXT = Context(id="py-course-1", label="IO101", title="Interop course")

KEY = JWK.generate(kty="RSA", size=2048)
PRIVATE_PEM = KEY.export_to_pem(private_key=True, password=None).decode()
PUBLIC_PEM = KEY.export_to_pem().decode()
STATE = {"tool_base": None, "base": None}

LOCK = threading.Lock()
SAVE_LOCK = threading.Lock()
DB = {
    # Links created from accepted Deep Linking responses.
    "links": [],
    # Line items (the package's TLineItem dicts), id = <base>/lineitems/<n>/lineitem.
    "lineitems": [],
    # Accepted scores: {"lineitem": n, "score": {...}}.
    "scores": [],
    # Scores the platform refused, with the status it answered.
    "refused_scores": [],
    # Deep Linking responses refused, with why.
    "dl_refusals": [],
    # Tokens issued (count) and token requests refused.
    "tokens_issued": 0,
    "token_refusals": [],
    # The context's members (set by the test through /members).
    "members": [],
    # Membership pages served (page numbers).
    "member_pages": [],
}


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
            .set_deeplink_launch_url(tool + "/lti/launch")
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


def lineitem_url(n):
    return "%s/lineitems/%d/lineitem" % (STATE["base"], n)


def lineitem_number(line_item_id):
    try:
        n = int(str(line_item_id).rstrip("/").split("/")[-2])
    except (ValueError, IndexError):
        raise LineItemNotFoundException()
    if n < 1 or n > len(DB["lineitems"]):
        raise LineItemNotFoundException()
    return n


class Grades(AssignmentsGradesService):
    """The storage side of the package's AGS handlers (in memory)."""

    def find_lineitems(self, page=1, limit=None, line_item_id=None,
                       resource_link_id=None, resource_id=None, tag=None, **_):
        items = [
            li for li in DB["lineitems"]
            if (resource_link_id is None or li.get("resourceLinkId") == resource_link_id)
            and (resource_id is None or li.get("resourceId") == resource_id)
            and (tag is None or li.get("tag") == tag)
        ]
        return {"content": items, "has_next": False, "next": None}

    def find_lineitem(self, line_item_id):
        return DB["lineitems"][lineitem_number(line_item_id) - 1]

    def create_lineitem(self, creation_data):
        item = dict(creation_data)
        item["id"] = lineitem_url(len(DB["lineitems"]) + 1)
        DB["lineitems"].append(item)
        return item

    def update_lineitem(self, update_data):
        n = lineitem_number(update_data["id"])
        DB["lineitems"][n - 1].update(update_data)
        return DB["lineitems"][n - 1]

    def delete_lineitem(self, line_item_id):
        raise LineItemNotFoundException()

    def update_score(self, line_item_id, score):
        n = lineitem_number(line_item_id)
        for k in ("userId", "timestamp", "activityProgress", "gradingProgress"):
            if k not in (score or {}):
                DB["refused_scores"].append({"lineitem": n, "why": k + " missing"})
                return UpdateScoreStatus.NOTAPPLIED
        prev = [s["score"]["timestamp"] for s in DB["scores"]
                if s["lineitem"] == n and s["score"]["userId"] == score["userId"]]
        # RFC 3339 UTC timestamps of one format compare as strings.
        if prev and not all(score["timestamp"] > p for p in prev):
            DB["refused_scores"].append({"lineitem": n, "why": "timestamp not newer"})
            return UpdateScoreStatus.OLD_TIMESTAMP
        DB["scores"].append({"lineitem": n, "score": score})
        return UpdateScoreStatus.SUCCESS

    def get_results(self, line_item_id, page=1, limit=None, user_id=None, **_):
        n = lineitem_number(line_item_id)
        latest = {}
        for s in DB["scores"]:
            if s["lineitem"] == n:
                latest[s["score"]["userId"]] = s["score"]
        out = [
            {"id": lineitem_url(n) + "/results/" + u, "scoreOf": lineitem_url(n),
             "userId": u, "resultScore": sc.get("scoreGiven"),
             "resultMaximum": sc.get("scoreMaximum")}
            for u, sc in latest.items() if user_id is None or u == user_id
        ]
        return {"content": out, "has_next": False, "next": None}


class Roster(NamesRoleProvisioningService):
    """The storage side of the package's NRPS handler (in memory)."""

    def get_member_data_page(self, page=1, limit=None, role=None, since=None, **_):
        DB["member_pages"].append(page)
        members = DB["members"]
        if limit:
            start = (page - 1) * limit
            chunk = members[start:start + limit]
            return {"content": [dict(m) for m in chunk],
                    "has_next": start + limit < len(members)}
        return {"content": [dict(m) for m in members], "has_next": False}

    def get_context_by_id(self):
        return CONTEXT

    def is_resource_link_valid(self, context_id, resource_link_id):
        return any(l["id"] == resource_link_id for l in DB["links"])


def save_state():
    """Keeps what the platform holds across a restart (`--state FILE`).
    Written to a temporary file and renamed over the old one, so a platform
    killed mid-write (as the outage test does) leaves the last whole state."""
    if STATE.get("file"):
        with SAVE_LOCK:
            tmp = "%s.%d.tmp" % (STATE["file"], threading.get_ident())
            with open(tmp, "w") as f:
                json.dump(DB, f)
            os.replace(tmp, STATE["file"])


def call(svc, handler, **kwargs):
    """One of the package's service handlers; a token it cannot decode or
    verify is a 401 (the package raises instead of answering)."""
    try:
        return svc.handle_resp(handler, **kwargs)
    except (jwt.exceptions.PyJWTError, LtiException) as e:
        return Response(result=None, code=401, message="invalid token: %s" % (e,))


def escape(s):
    return (
        str(s)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def int_params(q):
    """Query values the package does arithmetic on, as numbers."""
    out = dict(q)
    for k in ("page", "limit"):
        if k in out:
            try:
                out[k] = int(out[k])
            except ValueError:
                out.pop(k)
    return out


def check_dl_claims(conf, jwt_string, items):
    """What the package leaves to the platform: the response's addressing,
    its deployment and data, and that items use the registered launch URL."""
    conf.validate_jwt_format(jwt_string)
    body = conf._jwt["body"]
    tool_launch = STATE["tool_base"] + "/lti/launch"
    checks = [
        ("iss", body.get("iss") == CLIENT_ID),
        ("aud", body.get("aud") == ISSUER or body.get("aud") == [ISSUER]),
        ("deployment_id",
         body.get("https://purl.imsglobal.org/spec/lti/claim/deployment_id") == DEPLOYMENT_ID),
        ("version", body.get("https://purl.imsglobal.org/spec/lti/claim/version") == "1.3.0"),
        ("data", body.get("https://purl.imsglobal.org/spec/lti-dl/claim/data") == DL_DATA),
        ("nonce", bool(body.get("nonce"))),
    ]
    for item in items:
        if item.get("type") == "ltiResourceLink":
            checks.append(("item url", item.get("url") in (None, tool_launch)))
    return [name for name, ok in checks if not ok]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("platform.py: " + (fmt % args) + "\n")

    def send(self, status, body, ctype="text/html; charset=utf-8", headers=()):
        if getattr(self, "held", None) is not None:
            # Answered once the state is saved (see handle_request).
            self.held.append((status, body, ctype, headers))
            return
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status, value, ctype="application/json", headers=()):
        self.send(status, json.dumps(value), ctype, headers)

    def do_GET(self):
        self.handle_request(dict(parse_qsl(urlparse(self.path).query)), {}, b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        ctype = self.headers.get("Content-Type") or ""
        form = {}
        if ctype.startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(raw.decode()))
        self.handle_request(dict(parse_qsl(urlparse(self.path).query)), form, raw)

    def service_request(self, query, raw):
        try:
            body = json.loads(raw.decode()) if raw else None
        except ValueError:
            body = None
        return PlainRequest({
            "method": self.command,
            "get_data": int_params(query),
            "form_data": {},
            "headers": self.headers,
            "content_type": self.headers.get("Content-Type"),
            "path": urlparse(self.path).path,
            "json": body,
        })

    def send_service(self, resp, headers=()):
        result = resp.result
        if isinstance(result, dict) and "content" in result and "has_next" in result:
            # The package's handlers answer AGS containers as a page object;
            # on the wire (AGS 2.0) a container is the JSON array, with the
            # next page in a Link header.
            headers = list(headers)
            if result.get("next"):
                headers.append(("Link", generate_next_link(result["next"])))
            return self.send_json(resp.code, result["content"], resp.media_type, headers)
        if result is None:
            self.send_json(resp.code, {"message": resp.message}, "application/json")
        else:
            self.send_json(resp.code, resp.result, resp.media_type, headers)

    def handle_request(self, query, form, raw):
        path = urlparse(self.path).path
        conf = PlatformConf()
        conf.get_registration()
        base = STATE["base"]
        # The answer waits until the state is saved: a test that kills the
        # platform right after an answer finds that change after a restart.
        self.held = []
        try:
            with LOCK:
                self.route(path, query, form, raw, conf, base)
                save_state()
        except Exception as e:  # shown to the test, which fails with it
            self.held = [(500, "platform error: %r" % (e,), "text/plain", ())]
        held, self.held = self.held, None
        for answer in held:
            self.send(*answer)

    def route(self, path, query, form, raw, conf, base):
        parts = path.strip("/").split("/")
        if path == "/jwks":
            return self.send_json(200, conf.get_jwks())
        if path == "/recorded":
            return self.send_json(200, DB)
        if path == "/members" and self.command == "POST":
            DB["members"] = json.loads(raw.decode())
            return self.send_json(200, {"members": len(DB["members"])})
        if path == "/start":
            req = PlainRequest({"method": "GET", "get_data": query, "form_data": {}})
            login = Login(req, conf)
            login.set_lti_message_hint(
                course=query.get("course", "intro"),
                role=query.get("role", "learner"),
                message=query.get("message", "launch"),
                link=query.get("link"),
            )
            url = login.initiate_login(query.get("user", "py-learner-1"))
            return self.send(302, "", headers=[("Location", url)])
        if path == "/auth":
            return self.auth(query, form, conf, base)
        if path == "/deep_link/return" and self.command == "POST":
            jwt_string = form.get("JWT", "")
            try:
                items = conf.validate_deeplinking_resp({"JWT": jwt_string})
            except Exception as e:
                DB["dl_refusals"].append("package: %s" % (e,))
                return self.send(400, "deep linking response refused: %s" % (e,), "text/plain")
            bad = check_dl_claims(conf, jwt_string, items)
            if bad:
                DB["dl_refusals"].append("claims: %s" % ", ".join(bad))
                return self.send(400, "deep linking response refused: " + ", ".join(bad),
                                 "text/plain")
            created = []
            for item in items:
                if item.get("type") != "ltiResourceLink":
                    continue
                link = {
                    "id": "py-dl-link-%d" % (len(DB["links"]) + 1),
                    "title": item.get("title"),
                    "custom": item.get("custom") or {},
                    "lineitem": None,
                }
                if item.get("lineItem"):
                    li = dict(item["lineItem"])
                    li["resourceLinkId"] = link["id"]
                    li["id"] = lineitem_url(len(DB["lineitems"]) + 1)
                    DB["lineitems"].append(li)
                    link["lineitem"] = li["id"]
                DB["links"].append(link)
                created.append(link)
            return self.send_json(200, {"created": created})
        if path == "/token" and self.command == "POST":
            try:
                tok = conf.get_access_token(form)
            except Exception as e:
                DB["token_refusals"].append(repr(e))
                return self.send_json(400, {"error": "invalid_request",
                                            "error_description": repr(e)})
            DB["tokens_issued"] += 1
            return self.send_json(200, tok)
        if parts[0] == "lineitems":
            svc = Grades(self.service_request(query, raw), conf, base + "/lineitems",
                         "/".join([base] + parts[:3]) if len(parts) >= 3 else None)
            if len(parts) == 1:
                h = svc.handle_get_lineitems if self.command == "GET" else svc.handle_create_lineitem
                return self.send_service(call(svc, h))
            li = lineitem_url(int(parts[1])) if parts[1].isdigit() else ""
            if len(parts) == 3 and parts[2] == "lineitem":
                return self.send_service(call(svc, svc.handle_get_lineitem, line_item_id=li))
            if len(parts) == 4 and parts[3] == "scores":
                resp = call(svc, svc.handle_update_score, line_item_id=li)
                if resp.code >= 300:
                    DB["refused_scores"].append({"status": resp.code, "why": resp.message})
                return self.send_service(resp)
            if len(parts) == 4 and parts[3] == "results":
                return self.send_service(call(svc, svc.handle_get_results, line_item_id=li))
            return self.send(404, "not found", "text/plain")
        if path == "/memberships":
            svc = Roster(self.service_request(query, raw), conf, base + "/memberships")
            resp = call(svc, svc.handle_get_members)
            headers = []
            if resp.result and resp.result.get("next"):
                headers.append(("Link", generate_next_link(resp.result["next"])))
            return self.send_service(resp, headers)
        return self.send(404, "not found", "text/plain")

    def auth(self, query, form, conf, base):
        data = dict(query)
        data.update(form)
        req = PlainRequest({"method": self.command, "get_data": query, "form_data": form})
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
        instructor = hint.get("role") == "instructor"
        launch = Launch(req, conf)
        user = data.get("login_hint", "py-learner-1")
        launch.set_user_data(
            user,
            [INSTRUCTOR if instructor else LEARNER],
            full_name="Grace Hopper" if user == "py-learner-1" else "Member " + user,
            email_address=user + "@example.edu",
        )
        launch.set_launch_context_claim(
            CONTEXT.id, context_title=CONTEXT.title, context_label=CONTEXT.label
        )
        launch.set_launch_presentation_claim(document_target="iframe")
        if hint.get("message") == "deep_link":
            launch.set_dl(
                base + "/deep_link/return",
                title="Add content",
                accept_types={"ltiResourceLink"},
                extra_data=DL_DATA,
            )
        elif hint.get("link"):
            link = next((l for l in DB["links"] if l["id"] == hint["link"]), None)
            if link is None:
                return self.send(400, "unknown link", "text/plain")
            launch.set_resource_link_claim(link["id"], title=link["title"])
            launch.set_custom_parameters_claim(link["custom"])
            if link["lineitem"]:
                launch.set_ags(base + "/lineitems", link["lineitem"])
            launch.set_nrps(base + "/memberships?limit=2")
        else:
            launch.set_resource_link_claim("py-link-1", title="Interop link")
            launch.set_custom_parameters_claim({"course": hint.get("course", "intro")})
        out = launch.lti_launch()
        page = (
            '<!doctype html><form id="f" method="post" action="%s">'
            '<input type="hidden" name="id_token" value="%s">'
            '<input type="hidden" name="state" value="%s"></form>'
            "<script>document.getElementById('f').submit()</script>"
            % (escape(out["launch_url"]), escape(out["id_token"]), escape(out["state"]))
        )
        return self.send(200, page)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool-base", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state", help="a JSON file that keeps the platform's data across restarts")
    args = ap.parse_args()
    STATE["tool_base"] = args.tool_base.rstrip("/")
    STATE["file"] = args.state
    if args.state:
        try:
            with open(args.state) as f:
                DB.update(json.load(f))
        except FileNotFoundError:
            pass
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = srv.server_address[1]
    base = "http://127.0.0.1:%d" % port
    STATE["base"] = base
    print(
        json.dumps(
            {
                "port": port,
                "issuer": ISSUER,
                "client_id": CLIENT_ID,
                "deployment_id": DEPLOYMENT_ID,
                "auth_url": base + "/auth",
                "token_url": base + "/token",
                "jwks_url": base + "/jwks",
                "start_url": base + "/start",
                "base": base,
            }
        ),
        flush=True,
    )
    # Stop when the test closes our stdin (the test process went away).
    threading.Thread(target=lambda: (sys.stdin.read(), srv.shutdown()), daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
