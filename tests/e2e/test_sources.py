"""webhook sources -> XMPP: the example payloads Alertmanager, Grafana,
GitHub, GitLab and Gitea/Forgejo document (tests/e2e/payloads/, see its
README) POSTed with the headers each sends, and the exact text the XMPP user
receives; each credential accepted and refused; what "auto" recognises;
templates; the 400 answers for bodies that cannot become text. One Prosody
and one ferry for the module."""

import hashlib
import hmac
import json
import os

import pytest

import harness as h

SECRET = "comp-secret-Sr71"
DOMAIN = "hooks.localhost"
TOKEN = "tok-src-Qa12"
GH_SECRET = "gh-secret-Lp09"
GL_TOKEN = "gl-token-Xc33"
GT_SECRET = "gitea-secret-Vv48"
PAYLOADS = os.path.join(os.path.dirname(__file__), "payloads")

GRAFANA_TEMPLATE = """\
{{status}} from org {{orgId}}:
{{#alerts}}
- {{labels.alertname}} in {{labels.zone}} ({{values.B}}){{^panelURL}} no panel{{/panelURL}}
{{/alerts}}
{{^alerts}}no alerts{{/alerts}}
{{! a comment }}{{missing.name}}end"""

# inside {{#pusher}}, "repository" and "commits" are found in the enclosing document
PUSH_TEMPLATE = "{{#pusher}}{{name}} -> {{repository.full_name}}:{{#commits}} [{{message}}]{{/commits}}{{/pusher}}"


def payload(name):
    with open(os.path.join(PAYLOADS, name), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def env(module_testbed, ferry_bin, tmp_path_factory):
    tb = module_testbed
    e = h.Env()
    e.prosody = tb.prosody(components={DOMAIN: SECRET}, users=[("alice", "localhost", "alicepw")])
    files = tmp_path_factory.mktemp("sources")
    gl_file = files / "gitlab_token"
    gl_file.write_text(GL_TOKEN + "\n")
    tmpl_file = files / "push.mustache"
    tmpl_file.write_text(PUSH_TEMPLATE)
    alice = ["alice@localhost"]
    endpoints = {
        # every credential, source "auto"
        "auto": {"token": TOKEN, "github_secret": GH_SECRET, "gitlab_token_file": str(gl_file),
                 "gitea_secret": GT_SECRET, "deliver_to": alice},
        "am": {"source": "alertmanager", "token": TOKEN, "deliver_to": alice},
        "gh": {"source": "github", "github_secret": GH_SECRET, "deliver_to": alice},
        "gl": {"source": "gitlab", "gitlab_token": GL_TOKEN, "deliver_to": alice},
        "gt": {"source": "gitea", "gitea_secret": GT_SECRET, "deliver_to": alice},
        "txt": {"source": "text", "token": TOKEN, "deliver_to": alice},
        "tmpl": {"template": GRAFANA_TEMPLATE, "token": TOKEN, "deliver_to": alice},
        "tmplfile": {"template_file": str(tmpl_file), "github_secret": GH_SECRET, "deliver_to": alice},
        # a source, but no credential: takes nothing in
        "outonly": {"source": "github", "url": "http://127.0.0.1:9/never", "allow": ["localhost"]},
    }
    comp = {"adapter": "webhook", "domain": DOMAIN, "secret": SECRET, "endpoints": endpoints}
    e.ferry = tb.linked_ferry(e.prosody, {"hooks": comp})
    e.alice = tb.client("alice@localhost", "alicepw", e.prosody)
    return e


def post(env, endpoint, body, headers=None, content_type="application/json", token=TOKEN):
    hdrs = {}
    if content_type:
        hdrs["Content-Type"] = content_type
    if token:
        hdrs["Authorization"] = "Bearer " + token
    hdrs.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return h.http_request("POST", env.ferry.url("/hooks/hooks/" + endpoint), body, hdrs)


def hex_hmac(secret, body):
    if isinstance(body, str):
        body = body.encode()
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github(event, body, secret=GH_SECRET):
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": os.urandom(8).hex(),
            "X-Hub-Signature-256": h.github_signature(secret, body)}


def gitea(event, body, secret=GT_SECRET, forgejo=False):
    """Gitea sends its own headers and GitHub's and Gogs' too; Forgejo adds
    X-Forgejo-* beside X-Gitea-*."""
    hdrs = {"X-Gitea-Event": event, "X-GitHub-Event": event, "X-Gogs-Event": event,
            "X-Gitea-Signature": hex_hmac(secret, body)}
    if forgejo:
        hdrs = {"X-Forgejo-Event": event, "X-GitHub-Event": event,
                "X-Forgejo-Signature": hex_hmac(secret, body)}
    return hdrs


def gitlab(event, token=GL_TOKEN):
    return {"X-Gitlab-Event": event, "X-Gitlab-Token": token}


def received(env, text, frm, timeout=10):
    """Alice got TEXT from the endpoint FRM (as a chat message)."""
    jid = frm + "@" + DOMAIN
    msg = env.alice.wait_message(lambda s: s.body == text and s.frm.split("/")[0] == jid, timeout=timeout,
                                 what="message %r from %s" % (text[:80], jid))
    assert msg.type == "chat", msg
    return msg


def accepted(r):
    assert r.status == 202, r


# ------------------------------------------------------------------ Alertmanager and Grafana

AM_FIRING = (
    "*[FIRING:1] ProbeFailure*\n"
    "\u2022 BlackBox Probe Failure: https://server.example.org (instance=https://server.example.org, "
    "job=http_checks, severity=critical) "
    "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0\\u0026g0.tab=1")

AM_DESCRIPTION = (
    "*[FIRING:1] Test prometheus24*\n"
    "\u2022 some description (instance=localhost:9090, job=prometheus24) "
    "http://example.com:9090/graph?g0.expr=go_memstats_alloc_bytes+%3E+0&g0.tab=1")

GRAFANA_FIRING = (
    "*[FIRING:2] High memory usage, High CPU usage*\n"
    "\u2022 High memory usage: This alert was triggered for zone us-1 (team=blue, zone=us-1) "
    "[B=44.2394, C=1] https://play.grafana.org/alerting/1afz29v7z/edit\n"
    "\u2022 High CPU usage: This alert was triggered for zone eu-1 (team=blue, zone=eu-1) "
    "[B=44.2394, C=1] https://play.grafana.org/alerting/d1rdpdv7k/edit")


def test_alertmanager_firing(env):
    accepted(post(env, "am", payload("alertmanager/firing.json")))
    received(env, AM_FIRING, "am")


def test_alertmanager_recognised_by_auto(env):
    accepted(post(env, "auto", payload("alertmanager/firing-description-only.json")))
    received(env, AM_DESCRIPTION, "auto")


def test_alertmanager_resolved_and_many_alerts(env):
    """Alertmanager sends the same shape when the group resolves; past 20
    alerts, and for those it truncated (max_alerts), a count stands in."""
    doc = json.loads(payload("alertmanager/firing.json"))
    doc["status"] = "resolved"
    doc["alerts"][0]["status"] = "resolved"
    doc["alerts"][0]["generatorURL"] = ""
    accepted(post(env, "am", doc))
    received(env, "*[RESOLVED] ProbeFailure*\n"
             "\u2022 BlackBox Probe Failure: https://server.example.org (instance=https://server.example.org, "
             "job=http_checks, severity=critical) http://prometheus.example.org:9093", "am")

    doc = json.loads(payload("alertmanager/firing.json"))
    one = doc["alerts"][0]
    doc["alerts"] = []
    for i in range(23):
        a = json.loads(json.dumps(one))
        a["labels"]["instance"] = "host%d" % i
        a["status"] = "resolved" if i == 1 else "firing"
        doc["alerts"].append(a)
    doc["truncatedAlerts"] = 4
    accepted(post(env, "am", doc))
    lines = ["*[FIRING:22] ProbeFailure*"]
    for i in range(20):
        lines.append("\u2022 %sBlackBox Probe Failure: https://server.example.org (instance=host%d, "
                     "job=http_checks, severity=critical) "
                     "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%%3D%%3D+0\\u0026g0.tab=1"
                     % ("[RESOLVED] " if i == 1 else "", i))
    lines.append("\u2026 and 7 more")
    received(env, "\n".join(lines), "am")


def test_grafana_recognised_by_auto(env):
    accepted(post(env, "auto", payload("grafana/firing.json")))
    received(env, GRAFANA_FIRING, "auto")


# ------------------------------------------------------------------ GitHub

GH_PUSH = ("*[Codertocat/Hello-World]* Codertocat pushed 1 commit to master\n"
           "\u2022 6113728 Initial commit\n"
           "https://github.com/Codertocat/Hello-World/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246")

GITHUB_CASES = [
    ("push", "github/push.json", GH_PUSH),
    ("pull_request", "github/pull_request.opened.json",
     "*[Codertocat/Hello-World]* Codertocat opened pull request #2: Update the README with new information.\n"
     "https://github.com/Codertocat/Hello-World/pull/2"),
    ("issues", "github/issues.opened.json",
     "*[Codertocat/Hello-World]* Codertocat opened issue #1: Spelling error in the README file\n"
     "https://github.com/Codertocat/Hello-World/issues/1"),
    ("release", "github/release.published.json",
     "*[Codertocat/Hello-World]* Codertocat published release 0.0.1\n"
     "https://github.com/Codertocat/Hello-World/releases/tag/0.0.1"),
    ("workflow_run", "github/workflow_run.completed.json",
     "*[octo-org/octo-repo]* workflow test #163 on master: *success*\n"
     "https://github.com/octo-org/octo-repo/actions/runs/289782451"),
    ("check_suite", "github/check_suite.completed.json",
     "*[Codertocat/Hello-World]* check suite octocoders-linter on changes (ec26c3e): *success*\n"
     "https://github.com/Codertocat/Hello-World/commit/ec26c3e57ca3a959ca5aad62de7213c562f8c821"),
    ("ping", "github/ping.json",
     "*[Octocoders/Hello-World]* GitHub webhook connected: Anything added dilutes everything else."),
    ("star", "github/star.created.json", "GitHub star created in Codertocat/Hello-World by Codertocat"),
]


@pytest.mark.parametrize("event,name,text", GITHUB_CASES, ids=[c[0] for c in GITHUB_CASES])
def test_github_event(env, event, name, text):
    body = payload(name)
    accepted(post(env, "gh", body, headers=github(event, body), token=None))
    received(env, text, "gh")


def test_github_recognised_by_auto(env):
    body = payload("github/pull_request.opened.json")
    accepted(post(env, "auto", body, headers=github("pull_request", body), token=None))
    received(env, GITHUB_CASES[1][2], "auto")


def test_github_push_lists_five_commits_and_counts_the_rest(env):
    doc = json.loads(payload("github/push.json"))
    first = doc["commits"][0]
    doc["commits"] = []
    for i in range(7):
        c = json.loads(json.dumps(first))
        c["id"] = "%07x" % (0xabc0000 + i) + "0" * 33
        c["message"] = "change %d\n\nwith a body that is not shown" % i
        doc["commits"].append(c)
    doc["commits"][2]["message"] = "x" * 200
    body = json.dumps(doc)
    accepted(post(env, "gh", body, headers=github("push", body), token=None))
    lines = ["*[Codertocat/Hello-World]* Codertocat pushed 7 commits to master"]
    for i in range(5):
        lines.append("\u2022 abc000%d %s" % (i, "x" * 120 + "\u2026" if i == 2 else "change %d" % i))
    lines += ["\u2026 and 2 more", doc["compare"]]
    received(env, "\n".join(lines), "gh")


def test_payload_text_that_xml_cannot_carry_is_replaced(env):
    """A commit message with control characters still arrives, as valid XML."""
    doc = json.loads(payload("github/push.json"))
    doc["commits"][0]["message"] = "bell\u0007 and esc\u001b <b>&amp;</b>"
    body = json.dumps(doc)
    accepted(post(env, "gh", body, headers=github("push", body), token=None))
    received(env, GH_PUSH.replace("Initial commit", "bell\ufffd and esc\ufffd <b>&amp;</b>"), "gh")


# ------------------------------------------------------------------ GitLab

GITLAB_CASES = [
    ("Push Hook", "gitlab/push.json",
     "*[mike/diaspora]* John Smith pushed 4 commits to master\n"
     "\u2022 b6568db Update Catalan translation to e38cb41.\n"
     "\u2022 da15608 fixed readme\n"
     "\u2026 and 2 more\n"
     "http://example.com/mike/diaspora/-/compare/95790bf891e7...da1560886d4f"),
    ("Merge Request Hook", "gitlab/merge_request.json",
     "*[gitlabhq/gitlab-test]* Administrator opened merge request !1: MS-Viewport (ms-viewport \u2192 master)\n"
     "http://example.com/diaspora/merge_requests/1"),
    ("Pipeline Hook", "gitlab/pipeline.json",
     "*[gitlab-org/gitlab-test]* pipeline #31 on master: *success* in 63 s\n"
     "failed jobs: test-build\n"
     "http://example.com/gitlab-org/gitlab-test/-/pipelines/31"),
    ("Issue Hook", "gitlab/issue.json",
     "*[gitlabhq/gitlab-test]* Administrator opened issue #23: New API: create/update/delete file\n"
     "http://example.com/diaspora/issues/23"),
]


@pytest.mark.parametrize("event,name,text", GITLAB_CASES, ids=[c[0] for c in GITLAB_CASES])
def test_gitlab_event(env, event, name, text):
    accepted(post(env, "gl", payload(name), headers=gitlab(event), token=None))
    received(env, text, "gl")


def test_gitlab_recognised_by_auto_with_token_from_file(env):
    accepted(post(env, "auto", payload("gitlab/merge_request.json"), headers=gitlab("Merge Request Hook"),
                  token=None))
    received(env, GITLAB_CASES[1][2], "auto")


# ------------------------------------------------------------------ Gitea and Forgejo

GITEA_CASES = [
    ("push", "gitea/push.json",
     "*[gitea/webhooks]* gitea pushed 1 commit to develop\n"
     "\u2022 bffeb74 Webhooks Yay!\n"
     "http://localhost:3000/gitea/webhooks/compare/"
     "28e1879d029cb852e4844d9c718537df08844e03...bffeb74224043ba2feb48d137756c8a9331c449a"),
    ("pull_request", "gitea/pull_request.opened.json",
     "*[gogits/hello-world]* unknwon opened pull request #2: huge improvements\n"
     "http://try.gitea.io/gogits/hello-world/pulls/2"),
    ("issues", "gitea/issues.opened.json",
     "*[gogits/hello-world]* unknwon opened issue #1: Problem\n"
     "http://try.gitea.io/gogits/hello-world/issues/1"),
    ("release", "gitea/release.json",
     "*[gogits/hello-world]* unknwon published release v1.0.0\n"
     "http://try.gitea.io/gogits/hello-world/releases/tag/v1.0.0"),
]


@pytest.mark.parametrize("event,name,text", GITEA_CASES, ids=[c[0] for c in GITEA_CASES])
def test_gitea_event(env, event, name, text):
    body = payload(name)
    accepted(post(env, "gt", body, headers=gitea(event, body), token=None))
    received(env, text, "gt")


def test_gitea_recognised_by_auto_before_its_github_header(env):
    body = payload("gitea/push.json")
    accepted(post(env, "auto", body, headers=gitea("push", body), token=None))
    received(env, GITEA_CASES[0][2], "auto")


def test_forgejo_headers(env):
    body = payload("gitea/issues.opened.json")
    accepted(post(env, "auto", body, headers=gitea("issues", body, forgejo=True), token=None))
    received(env, GITEA_CASES[2][2], "auto")


# ------------------------------------------------------------------ templates


def test_template_over_grafana_payload(env):
    accepted(post(env, "tmpl", payload("grafana/firing.json")))
    received(env, "firing from org 1:\n"
             "- High memory usage in us-1 (44.23943737541908) no panel\n"
             "- High CPU usage in eu-1 (44.23943737541908) no panel\n"
             "\n"  # the {{^alerts}} line is not a section alone on its line: its newline stays
             "end", "tmpl")


def test_template_inverted_section_and_text_plain(env):
    accepted(post(env, "tmpl", {"status": "quiet", "orgId": 7, "alerts": []}))
    received(env, "quiet from org 7:\nno alerts\nend", "tmpl")
    # text/plain is delivered as it is: a template reads JSON
    accepted(post(env, "tmpl", "plain words for the template endpoint", content_type="text/plain"))
    received(env, "plain words for the template endpoint", "tmpl")


def test_template_file_overrides_github_text(env):
    body = payload("github/push.json")
    accepted(post(env, "tmplfile", body, headers=github("push", body), token=None))
    received(env, "Codertocat -> Codertocat/Hello-World: [Initial commit]", "tmplfile")


def test_template_with_no_text_is_400(env):
    r = post(env, "tmplfile", "{}", headers=github("push", "{}"), token=None)
    assert r.status == 400, r
    assert r.body.decode() == "400 Bad Request: the endpoint's template gave no text for this JSON\n"


# ------------------------------------------------------------------ credentials


def reason(r):
    return r.body.decode().strip()


def test_github_signature_refused(env):
    body = payload("github/ping.json")
    r = post(env, "gh", body, headers=github("ping", body, secret="not-the-secret"), token=None)
    assert (r.status, reason(r)) == (401, "401 Unauthorized: wrong X-Hub-Signature-256"), r


def test_gitlab_token_refused(env):
    r = post(env, "gl", payload("gitlab/push.json"), headers=gitlab("Push Hook", token="gl-token-Xc34"),
             token=None)
    assert (r.status, reason(r)) == (401, "401 Unauthorized: wrong X-Gitlab-Token"), r
    r = post(env, "auto", payload("gitlab/push.json"), headers=gitlab("Push Hook", token=GT_SECRET), token=None)
    assert (r.status, reason(r)) == (401, "401 Unauthorized: wrong X-Gitlab-Token"), r


def test_gitea_signature_refused(env):
    body = payload("gitea/push.json")
    r = post(env, "gt", body, headers=gitea("push", body, secret=GH_SECRET), token=None)
    assert (r.status, reason(r)) == (401, "401 Unauthorized: wrong X-Gitea-Signature"), r
    r = post(env, "gt", body, headers=gitea("push", body + b" ", forgejo=True), token=None)
    assert (r.status, reason(r)) == (401, "401 Unauthorized: wrong X-Gitea-Signature"), r


def test_no_credential_is_401(env):
    r = post(env, "gt", payload("gitea/push.json"), headers={"X-Gitea-Event": "push"}, token=None)
    assert (r.status, reason(r)) == (401, "401 Unauthorized: missing or wrong token"), r
    # a bearer token is no credential where none is configured
    r = post(env, "gl", payload("gitlab/push.json"), headers={"X-Gitlab-Event": "Push Hook"}, token=GL_TOKEN)
    assert (r.status, reason(r)) == (401, "401 Unauthorized: missing or wrong token"), r


def test_endpoint_without_credentials_is_403(env):
    body = payload("github/ping.json")
    r = post(env, "outonly", body, headers=github("ping", body), token=None)
    assert (r.status, reason(r)) == (403, "403 Forbidden: this endpoint takes no inbound messages"), r


# ------------------------------------------------------------------ bodies that cannot become text

BAD_BODIES = [
    ("am", {"text": "not an alert"}, {}, "application/json",
     'Bad Request: taken as Alertmanager: the JSON has no "alerts" array'),
    ("am", {"alerts": [], "version": "4"}, {}, "application/json",
     'Bad Request: taken as Alertmanager: the JSON has no "status" string'),
    ("auto", {"zen": "no repository"}, {"X-GitHub-Event": "push"}, "application/json",
     'Bad Request: taken as GitHub push: the JSON has no "repository.full_name" string'),
    ("auto", {"repository": {"full_name": "a/b"}}, {"X-GitHub-Event": "push"}, "application/json",
     'Bad Request: taken as GitHub push: the JSON has no "ref" string'),
    ("auto", {"repository": {"full_name": "a/b"}, "action": "opened"}, {"X-GitHub-Event": "pull_request"},
     "application/json", 'Bad Request: taken as GitHub pull_request: the JSON has no "pull_request" object'),
    ("txt", {"alerts": [], "groupKey": "{}", "version": "4"}, {}, "application/json",
     'Bad Request: the JSON needs a non-empty "text" string (and is no known source\'s payload)'),
    ("auto", {"message": "nothing ferry knows"}, {}, "application/json",
     'Bad Request: the JSON needs a non-empty "text" string (and is no known source\'s payload)'),
    ("auto", ["a", "list"], {"X-Gitea-Event": "push"}, "application/json",
     "Bad Request: taken as Gitea push: the JSON is not an object"),
    ("auto", {"project": {}}, {"X-Gitlab-Event": "Push Hook"}, "application/json",
     'Bad Request: taken as GitLab Push Hook: the JSON has no "object_kind" string'),
    ("am", "firing!", {}, "text/plain", "Bad Request: taken as Alertmanager: the body is text/plain, not JSON"),
]


@pytest.mark.parametrize("endpoint,body,headers,ctype,why", BAD_BODIES, ids=[b[4][13:60] for b in BAD_BODIES])
def test_body_that_cannot_become_text_is_400(env, endpoint, body, headers, ctype, why):
    r = post(env, endpoint, body, headers=headers, content_type=ctype)
    assert (r.status, reason(r)) == (400, "400 " + why), r


def test_github_source_needs_its_event_header(env):
    body = payload("github/push.json")
    hdrs = github("push", body)
    del hdrs["X-GitHub-Event"]
    r = post(env, "gh", body, headers=hdrs, token=None)
    assert (r.status, reason(r)) == (400, "400 Bad Request: taken as GitHub: the request has no "
                                          "X-GitHub-Event header"), r


def test_refused_bodies_deliver_nothing(env):
    marker = "marker after the refused bodies"
    accepted(post(env, "txt", {"text": marker}))
    received(env, marker, "txt")
    leaked = env.alice.messages(lambda s: "not an alert" in (s.body or "") or "firing!" in (s.body or ""))
    assert not leaked, leaked


# ------------------------------------------------------------------ configuration errors


def check_config(ferry_bin, tmp_path, endpoint_lines, extra_files=None):
    for name, text in (extra_files or {}).items():
        (tmp_path / name).write_text(text)
    text = ("[xmpp]\nhost = \"127.0.0.1\"\nport = 5347\n\n[http]\nlisten = \"127.0.0.1:8480\"\n"
            "public_url = \"http://127.0.0.1:8480\"\n\n[components.hooks]\nadapter = \"webhook\"\n"
            "domain = \"hooks.localhost\"\nsecret = \"s\"\n\n[components.hooks.endpoints.e]\n"
            "token = \"t\"\ndeliver_to = [\"alice@localhost\"]\n" + endpoint_lines)
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    r = h.run_ferry_cli(["--check-config", "-c", str(path)], binary=ferry_bin)
    assert not h.sanitizer_reports(r.stderr), r.stderr
    return str(path), text, r


def test_template_that_does_not_parse_is_a_config_error(ferry_bin, tmp_path):
    path, text, r = check_config(ferry_bin, tmp_path, 'template = """\nok {{a}}\n{{#list}}\nnever closed"""\n')
    assert r.returncode != 0
    line = text.splitlines().index('template = """') + 1  # TOML drops the newline after """
    assert "%s:%d: components.hooks.endpoints.e.template: line 2 of the template: {{#list}} is not closed" % (
        path, line) in r.stderr, r.stderr


def test_template_file_error_names_the_file_and_line(ferry_bin, tmp_path):
    tfile = str(tmp_path / "t.mustache")
    path, text, r = check_config(ferry_bin, tmp_path, 'template_file = "%s"\n' % tfile,
                                 {"t.mustache": "line one\n{{#a}}\n{{/b}}\n"})
    assert r.returncode != 0
    line = len(text.splitlines())
    assert ("%s:%d: components.hooks.endpoints.e.template_file: %s:3: {{/b}} does not close {{#a}} "
            "(opened on line 2)" % (path, line, tfile)) in r.stderr, r.stderr


@pytest.mark.parametrize("lines,key,what", [
    ('source = "jira"\n', "source", 'unknown value "jira"'),
    ('template = "x"\ntemplate_file = "/dev/null"\n', "template_file", "not both"),
    ('template_file = "/nonexistent/t"\n', "template_file", "cannot read /nonexistent/t"),
    ('gitlab_token = ""\n', "gitlab_token", "must not be empty"),
    ('gitea_secret = "a"\ngitea_secret_file = "/dev/null"\n', "gitea_secret_file", "not both"),
])
def test_bad_source_keys_are_config_errors(ferry_bin, tmp_path, lines, key, what):
    path, text, r = check_config(ferry_bin, tmp_path, lines)
    assert r.returncode != 0
    hits = [l for l in r.stderr.splitlines() if l.startswith(path + ":") and ("e." + key + ":") in l]
    assert hits and what in hits[0], r.stderr
