"""The workers' autoscaling metric, measured for real.

A real Prometheus (started here on a free port, with a scrape config written
here) scrapes the real RabbitMQ's Prometheus endpoint the way the chart's
ServiceMonitor does (/metrics/detailed?family=queue_coarse_metrics). The test
publishes a backlog to uniquely named quorum queues, holds part of it
unacked in a consumer, and runs the prometheus-adapter rule's metricsQuery
with the label matchers the adapter derives from the chart's HPA selector,
and the KEDA prometheus trigger's query: they must return the JOBS waiting,
(ready + unacked messages of every job queue) × (slots per message).

The slots per message come from the schedulers' counters
sentryk8s_slots_published_total and sentryk8s_job_messages_published_total.
Here a stand-in serves those two counters, growing at exactly 8 slots per
message (or not at all), so that the expected job count is exact; the
scheduler's own counting is tested with the scheduler (tests/integration).
The same Prometheus then parses every alert and dashboard expression the
chart ships.
"""

import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid

import pika
import yaml

from chart import CHART, by_kind, one, render

AMQP_URL = os.environ.get("SENTRYK8S_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
RABBITMQ_PROMETHEUS = os.environ.get("SENTRYK8S_TEST_RABBITMQ_PROMETHEUS", "127.0.0.1:15692")
PROMETHEUS = os.environ.get("PROMETHEUS", "prometheus")
PROMTOOL = os.environ.get("PROMTOOL", "promtool")
ADAPTER_VALUES = CHART / "examples" / "prometheus-adapter-values.yaml"

EXTERNAL = ["postgresql.enabled=false", "rabbitmq.enabled=false",
            "secrets.databaseUrl=postgres://u:p@db:5432/sentryk8s", "secrets.amqpUrl=amqp://u:p@mq:5672/%2f"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect():
    """An AMQP connection; retried briefly in case the broker is still booting."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        except pika.exceptions.AMQPConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class StandInSchedulerCounters:
    """Serves a scheduler's two publish counters on /metrics: `slots_per_message` slots per
    message, 50 messages a second from start; with slots_per_message None both stay at
    their first value (no publishes). Both come from one clock reading per scrape, so
    their rates are in exactly that ratio."""

    def __init__(self, slots_per_message):
        start = time.monotonic()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                messages = 100 if slots_per_message is None else int((time.monotonic() - start) * 50)
                slots = 800 if slots_per_message is None else messages * slots_per_message
                body = ("# TYPE sentryk8s_slots_published_total counter\n"
                        f"sentryk8s_slots_published_total {slots}\n"
                        "# TYPE sentryk8s_job_messages_published_total counter\n"
                        f"sentryk8s_job_messages_published_total {messages}\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Prometheus:
    """A throwaway Prometheus scraping RabbitMQ's per-queue metrics every second, and the
    scheduler counters of `schedulers` ((job, namespace, address) triples) as
    prometheus-operator would label them."""

    def __init__(self, schedulers=()):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="sentryk8s-prom-"))
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{
                "job_name": "rabbitmq-queues",
                "metrics_path": "/metrics/detailed",
                "params": {"family": ["queue_coarse_metrics"]},
                "static_configs": [{"targets": [RABBITMQ_PROMETHEUS]}],
            }] + [{
                "job_name": job,
                "static_configs": [{"targets": [address], "labels": {"namespace": namespace}}
                                   for j, namespace, address in schedulers if j == job],
            } for job in sorted({job for job, _, _ in schedulers})],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(self.dir / "prometheus.log", "w")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {(self.dir / 'prometheus.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("prometheus did not become ready in 30 s")

    def query(self, expr):
        """Instant query; returns the API's JSON (status, data or error)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def values_of(result):
    return [float(sample["value"][1]) for sample in result["data"]["result"]]


def adapter_matchers(selector):
    """The label matchers prometheus-adapter derives from an HPA metric selector: k="v" for
    matchLabels, k=~"v1|v2" for In (values joined unescaped, as the adapter does)."""
    matchers = [f'{k}="{v}"' for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        if expr["operator"] != "In":
            raise AssertionError(f"the chart's selector uses {expr['operator']}, which this test does not map")
        matchers.append(f'{expr["key"]}=~"{"|".join(expr["values"])}"')
    return ",".join(matchers)


class QueueFixture(unittest.TestCase):
    """Uniquely named quorum queues (the job queues "<queue>", "<queue>.1" … and others) with
    a known backlog, and the chart's queries about them."""

    schedulers = ()

    @classmethod
    def setUpClass(cls):
        cls.standins = []
        specs = []
        for job, namespace, slots_per_message in cls.schedulers:
            standin = StandInSchedulerCounters(slots_per_message)
            cls.addClassCleanup(standin.stop)
            specs.append((job, namespace, standin.address))
        cls.prometheus = Prometheus(specs)
        cls.addClassCleanup(cls.prometheus.stop)

    def setUp(self):
        self.queue = f"sentryk8s.checks.hpa-test-{uuid.uuid4().hex[:12]}"
        self.declared = []
        self.connection = connect()
        self.channel = self.connection.channel()
        self.addCleanup(self.cleanup)
        self.declare(self.queue)

    def declare(self, name):
        # The same queue type the binary declares for jobs.
        self.channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        self.declared.append(name)

    def cleanup(self):
        if self.connection.is_open:
            self.channel = self.connection.channel()
            for name in self.declared:
                self.channel.queue_delete(name)
            self.connection.close()

    def adapter_query(self, objects):
        """The adapter rule's metricsQuery for the chart's HPA metric, as the adapter would run it."""
        rule = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["external"][0]
        metric = one(objects, "HorizontalPodAutoscaler", "worker")["spec"]["metrics"][0]["external"]["metric"]
        self.assertEqual(rule["name"]["as"], metric["name"])
        self.assertEqual(rule["resources"], {"namespaced": False})
        query = rule["metricsQuery"].replace("<<.LabelMatchers>>", adapter_matchers(metric["selector"]))
        self.assertNotIn("<<", query)
        return rule, query

    def publish(self, count, queue=None):
        self.channel.confirm_delivery()
        for n in range(count):
            self.channel.basic_publish("", queue or self.queue, json.dumps({"n": n}).encode(),
                                       pika.BasicProperties(delivery_mode=2), mandatory=True)

    def hold_unacked(self, count, queue=None):
        """A consumer that receives `count` messages and acknowledges none; returns their tags."""
        consumer = self.connection.channel()
        consumer.basic_qos(prefetch_count=count)
        held = []
        consumer.basic_consume(queue or self.queue, lambda ch, method, props, body: held.append(method.delivery_tag))
        deadline = time.monotonic() + 20
        while len(held) < count and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.2)
        self.assertEqual(len(held), count)
        return consumer, held

    def wait_for(self, query, expected, timeout=45):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            result = self.prometheus.query(query)
            self.assertEqual(result["status"], "success", result)
            last = values_of(result)
            if last == [expected]:
                return
            # Keep the AMQP connection's heartbeats going while waiting.
            self.connection.process_data_events(time_limit=0.5)
        self.fail(f"{query} returned {last}, expected [{expected}]")


class AutoscalingQuery(QueueFixture):
    """No scheduler counters scraped (nothing published, or schedulers from before job
    format 3): one slot per message, so the backlog is ready + unacked messages."""

    def test_adapter_rule_returns_the_ready_plus_unacked_backlog(self):
        objects = render(extra=EXTERNAL + [f"config.amqp.queue={self.queue}"])
        rule, query = self.adapter_query(objects)
        self.publish(150)
        consumer, held = self.hold_unacked(30)
        # 120 ready + 30 unacked.
        self.wait_for(query, 150.0)
        # The adapter's discovery (seriesQuery) sees the queue too.
        series = self.prometheus.query(f'count({rule["seriesQuery"][:-1]},queue="{self.queue}"}})')
        self.assertEqual(values_of(series), [1.0])
        # Acknowledging the held jobs shrinks the backlog: the value is live.
        for tag in held:
            consumer.basic_ack(tag)
        self.wait_for(query, 120.0)

    def test_keda_prometheus_trigger_asks_the_same_question(self):
        objects = render("keda-prometheus.yaml", [f"config.amqp.queue={self.queue}"])
        trigger = one(objects, "ScaledObject")["spec"]["triggers"][0]
        self.assertEqual(trigger["type"], "prometheus")
        self.publish(42)
        self.hold_unacked(2)
        self.wait_for(trigger["metadata"]["query"], 42.0)

    def test_other_queues_are_not_counted(self):
        objects = render(extra=EXTERNAL + [f"config.amqp.queue={self.queue}"])
        _, query = self.adapter_query(objects)
        other = f"{self.queue}.dead"
        self.declare(other)
        # "<queue>.1" is a job queue only with config.amqp.queues > 1.
        self.declare(f"{self.queue}.1")
        self.publish(9, other)
        self.publish(4, f"{self.queue}.1")
        self.publish(5)
        self.wait_for(query, 5.0)
        self.wait_for(query.replace(f'queue=~"{self.queue}"', f'queue=~"{other}"'), 9.0)


# The stand-in schedulers, labelled as prometheus-operator labels the chart's scheduler
# Service: release "sk" (fullname sk-sentryk8s) in the render's namespace, publishing 8
# slots per message; and an idle release in another namespace that publishes nothing.
SCHEDULER_JOB = "sk-sentryk8s-scheduler"
BUSY_NAMESPACE = "monitoring-test"
IDLE_NAMESPACE = "idle-test"


class JobCountBacklog(QueueFixture):
    """Several job queues and 8 slots per message: the backlog counts jobs, not messages."""

    schedulers = ((SCHEDULER_JOB, BUSY_NAMESPACE, 8), (SCHEDULER_JOB, IDLE_NAMESPACE, None))

    def fill_three_job_queues(self):
        """10 + 20 + 5 messages in the three job queues (4 of "<queue>.1" held unacked), and
        messages in queues that are not job queues with config.amqp.queues=3."""
        for name in (f"{self.queue}.1", f"{self.queue}.2", f"{self.queue}.3", f"{self.queue}.dead"):
            self.declare(name)
        self.publish(10)
        self.publish(20, f"{self.queue}.1")
        self.publish(5, f"{self.queue}.2")
        # Stranded in a queue dropped by lowering config.amqp.queues, and dead letters.
        self.publish(7, f"{self.queue}.3")
        self.publish(9, f"{self.queue}.dead")
        return self.hold_unacked(4, f"{self.queue}.1")

    def test_adapter_rule_counts_jobs_of_every_job_queue(self):
        objects = render(extra=EXTERNAL + [f"config.amqp.queue={self.queue}", "config.amqp.queues=3"])
        _, query = self.adapter_query(objects)
        self.assertIn(f'queue=~"{self.queue}|{self.queue}.1|{self.queue}.2"', query)
        consumer, held = self.fill_three_job_queues()
        # 35 messages (31 ready, 4 unacked) × 8 slots per message.
        self.wait_for(query, 280.0)
        for tag in held[:2]:
            consumer.basic_ack(tag)
        self.wait_for(query, 264.0)

    def test_keda_prometheus_trigger_counts_jobs_with_its_own_schedulers_ratio(self):
        self.fill_three_job_queues()
        extra = [f"config.amqp.queue={self.queue}", "config.amqp.queues=3"]
        cases = (
            # This release's schedulers publish 8 slots per message.
            (BUSY_NAMESPACE, [], 280.0),
            # No message carries more than slotsPerMessage: the measured ratio is capped by it.
            (BUSY_NAMESPACE, ["config.scheduler.slotsPerMessage=4"], 140.0),
            # A release whose schedulers publish nothing: 0 / 0 counts as one slot per message,
            # whatever the other release in the same Prometheus does.
            (IDLE_NAMESPACE, [], 35.0),
            # No scheduler scraped at all in that namespace: one slot per message too.
            ("nowhere-test", [], 35.0),
        )
        for namespace, more, expected in cases:
            with self.subTest(namespace=namespace, values=more):
                objects = render("keda-prometheus.yaml", extra + more, namespace=namespace)
                query = one(objects, "ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
                self.assertIn(f'namespace="{namespace}"', query)
                self.wait_for(query, expected)


class ShippedQueriesParse(unittest.TestCase):
    """Every PromQL expression the chart ships is valid for Prometheus."""

    @classmethod
    def setUpClass(cls):
        cls.prometheus = Prometheus()
        cls.addClassCleanup(cls.prometheus.stop)

    def test_alert_rules_pass_promtool(self):
        rule = one(render("external-existing-secret.yaml"), "PrometheusRule")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
            f.flush()
            result = subprocess.run([PROMTOOL, "check", "rules", f.name], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertRegex(result.stdout, r"SUCCESS: \d+ rules found")

    def test_dashboard_queries_parse(self):
        dashboard = json.loads((CHART / "dashboards" / "sentryk8s.json").read_text())
        # Row panels have no queries.
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        self.assertGreaterEqual(len(exprs), 10)
        for expr in exprs:
            with self.subTest(expr=expr):
                self.assertRegex(expr, r"sentryk8s_|rabbitmq_|up\{")
                concrete = (expr.replace("$__rate_interval", "1m").replace("$namespace", "ns")
                            .replace("$fullname", "sk").replace("$queue", "sentryk8s.checks")
                            .replace("$check", ".*"))
                result = self.prometheus.query(concrete)
                self.assertEqual(result["status"], "success", result)

    def test_keda_and_helper_queries_parse(self):
        for obj in by_kind(render("keda-prometheus.yaml"), "ScaledObject"):
            result = self.prometheus.query(obj["spec"]["triggers"][0]["metadata"]["query"])
            self.assertEqual(result["status"], "success", result)


if __name__ == "__main__":
    unittest.main()
