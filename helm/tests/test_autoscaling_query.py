"""The workers' autoscaling metric, measured for real.

A real Prometheus (started here on a free port, with a scrape config written
here) scrapes the real RabbitMQ's Prometheus endpoint the way the chart's
ServiceMonitor does (/metrics/detailed?family=queue_coarse_metrics). The test
publishes a backlog to a uniquely named quorum queue, holds part of it
unacked in a consumer, and runs the prometheus-adapter rule's metricsQuery
with the label matchers the adapter derives from the chart's HPA selector:
it must return ready + unacked. The same Prometheus then parses every alert
and dashboard expression the chart ships.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
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


class Prometheus:
    """A throwaway Prometheus scraping RabbitMQ's per-queue metrics every second."""

    def __init__(self):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="sentryk8s-prom-"))
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{
                "job_name": "rabbitmq-queues",
                "metrics_path": "/metrics/detailed",
                "params": {"family": ["queue_coarse_metrics"]},
                "static_configs": [{"targets": [RABBITMQ_PROMETHEUS]}],
            }],
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


class AutoscalingQuery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prometheus = Prometheus()
        cls.addClassCleanup(cls.prometheus.stop)

    def setUp(self):
        self.queue = f"sentryk8s.checks.hpa-test-{uuid.uuid4().hex[:12]}"
        self.connection = connect()
        self.channel = self.connection.channel()
        self.addCleanup(self.cleanup)
        # The same queue type the binary declares for jobs.
        self.channel.queue_declare(self.queue, durable=True, arguments={"x-queue-type": "quorum"})

    def cleanup(self):
        if self.connection.is_open:
            self.channel = self.connection.channel()
            self.channel.queue_delete(self.queue)
            self.connection.close()

    def adapter_query(self, objects):
        """The adapter rule's metricsQuery for the chart's HPA metric, as the adapter would run it."""
        rule = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["external"][0]
        metric = one(objects, "HorizontalPodAutoscaler", "worker")["spec"]["metrics"][0]["external"]["metric"]
        self.assertEqual(rule["name"]["as"], metric["name"])
        self.assertEqual(rule["resources"], {"namespaced": False})
        matchers = ",".join(f'{k}="{v}"' for k, v in sorted(metric["selector"]["matchLabels"].items()))
        query = rule["metricsQuery"].replace("<<.LabelMatchers>>", matchers)
        self.assertNotIn("<<", query)
        return rule, query

    def publish(self, count):
        self.channel.confirm_delivery()
        for n in range(count):
            self.channel.basic_publish("", self.queue, json.dumps({"n": n}).encode(),
                                       pika.BasicProperties(delivery_mode=2), mandatory=True)

    def hold_unacked(self, count):
        """A consumer that receives `count` messages and acknowledges none; returns their tags."""
        consumer = self.connection.channel()
        consumer.basic_qos(prefetch_count=count)
        held = []
        consumer.basic_consume(self.queue, lambda ch, method, props, body: held.append(method.delivery_tag))
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
        self.channel.queue_declare(other, durable=True, arguments={"x-queue-type": "quorum"})
        self.addCleanup(lambda: self.connection.is_open and self.connection.channel().queue_delete(other))
        self.channel.confirm_delivery()
        for _ in range(9):
            self.channel.basic_publish("", other, b"x", pika.BasicProperties(delivery_mode=2))
        self.publish(5)
        self.wait_for(query, 5.0)
        self.wait_for(query.replace(f'queue="{self.queue}"', f'queue="{other}"'), 9.0)


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
