"""Makes spans with the real OpenTelemetry Python SDK and exports them once
with its real OTLP exporter (gRPC or HTTP), printing the outcome as JSON.

usage: send_spans.py grpc|http ENDPOINT checkout|big [N]
- checkout: frontend "GET /checkout" (server) -> "POST /pay" (client) ->
  payments "charge" (server, error status, an event), one trace;
- big: one trace of N spans from frontend.
Spans are collected in memory first and exported in one call, so the
printed result is the collector's answer to that one request.
"""

import json
import sys
import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

mode, endpoint, scenario = sys.argv[1:4]
if mode == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=10)

memory = InMemorySpanExporter()


def tracer(service):
    resource = Resource.create(
        {
            "service.name": service,
            "k8s.namespace.name": "shop",
            "k8s.pod.name": service + "-7d9f",
            "k8s.container.name": service,
            "k8s.node.name": "node-1",
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider.get_tracer("sonde-test", "1.2.3")


front, pay = tracer("frontend"), tracer("payments")
if scenario == "checkout":
    attrs = {"http.method": "GET", "http.status_code": 200, "user.id": mode}
    with front.start_as_current_span("GET /checkout", kind=SpanKind.SERVER, attributes=attrs):
        time.sleep(0.12)
        with front.start_as_current_span("POST /pay", kind=SpanKind.CLIENT, attributes={"retry": False}):
            with pay.start_as_current_span(
                "charge", kind=SpanKind.SERVER, attributes={"amount": 12.5, "currency": "EUR"}
            ) as charge:
                charge.add_event("card declined", {"code": 51})
                charge.set_status(Status(StatusCode.ERROR, "declined"))
                time.sleep(0.01)
elif scenario == "big":
    n = int(sys.argv[4])
    with front.start_as_current_span("batch job"):
        for i in range(n - 1):
            with front.start_as_current_span("step %d" % i):
                pass
else:
    sys.exit("unknown scenario " + scenario)

spans = memory.get_finished_spans()
result = exporter.export(spans)
exporter.shutdown()
ids = sorted({format(s.context.trace_id, "032x") for s in spans})
print(json.dumps({"result": result.name, "trace_ids": ids, "spans": len(spans)}))
