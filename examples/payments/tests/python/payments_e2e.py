"""End-to-end test of the payments server with a client that is not tonic.

Drives a running `payments` server with Python grpcio, from stubs that grpcio-tools generates
at start-up from the service's .proto files, and checks what the layers promise on the wire:
validation details, rate limiting with RetryInfo, the response cache and its invalidation,
request-id echo, the server stream, health, reflection (grpcio-reflection speaks only
grpc.reflection.v1alpha), authentication (bearer JWTs minted here with PyJWT), who may see
which payment, and idempotent creates.

Usage: python payments_e2e.py --addr 127.0.0.1:PORT --proto-root /path/to/proto --jwt-secret S
       [--ca CA.pem --cert CLIENT.pem --key CLIENT.key]

With --ca the channel is TLS, the server verified against CA.pem; with --cert and --key the
client presents that certificate (mutual TLS), and a first scenario checks that a channel
without a client certificate is refused.

The server must run with AUTH_JWT_SECRET=S and RATE_LIMIT_PER_MINUTE=5: every scenario calls
as its own user (the token's `sub`, which the rate limit is keyed on) and makes at most 5
calls per method per user, except the rate-limit scenario.
Prints one line per scenario passed; exits non-zero on the first failure.
"""

import argparse
import importlib.resources
import itertools
import os
import queue
import sys
import tempfile
import threading
import time
import traceback
import uuid

import grpc
import jwt

DEADLINE = 10.0  # seconds, on every RPC
TOKEN_TTL = 3600  # seconds
SERVICE = "payments.v1.PaymentService"
RUN = uuid.uuid4().hex[:8]  # keeps user ids unique across runs against one server

_request_ids = itertools.count(1)
_jwt_secret = None  # set by main from --jwt-secret


class Failure(Exception):
    """A scenario's check failed."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def generate_stubs(proto_root, out_dir):
    """Compiles the service's protos into out_dir and puts it on sys.path."""
    from grpc_tools import protoc

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{os.path.join(proto_root, 'third_party')}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "payments/v1/payments.proto",
        "buf/validate/validate.proto",
    ]
    code = protoc.main(args)
    if code != 0:
        raise Failure(f"grpc_tools.protoc failed with exit code {code}: {' '.join(args)}")
    sys.path.insert(0, out_dir)


def user(scenario):
    return f"py-e2e-{RUN}-{scenario}"


def token(user_id, secret=None, ttl=TOKEN_TTL):
    """An HS256 bearer JWT for user_id: `sub` is the user, `exp` now + ttl seconds."""
    claims = {"sub": user_id, "exp": int(time.time()) + ttl}
    return jwt.encode(claims, secret or _jwt_secret, algorithm="HS256")


def metadata(user_id, bearer=None):
    """The user's bearer token and a fresh x-request-id; returns (metadata, request_id).

    user_id None: no authorization at all; bearer: that token instead of the user's.
    """
    request_id = f"py-e2e-{next(_request_ids)}"
    md = [("x-request-id", request_id)]
    if bearer is None and user_id is not None:
        bearer = token(user_id)
    if bearer is not None:
        md.append(("authorization", f"Bearer {bearer}"))
    return tuple(md), request_id


def md_get(md, key):
    for k, v in md or ():
        if k == key:
            return v
    return None


def call(method, request, user_id, extra=()):
    """A unary call that must succeed; returns (response, initial metadata as a dict)."""
    md, request_id = metadata(user_id)
    md += tuple(extra)
    try:
        response, rpc = method.with_call(request, metadata=md, timeout=DEADLINE)
    except grpc.RpcError as err:
        raise Failure(
            f"{method_name(method)} for {user_id}: unexpected {err.code()}: {err.details()}"
        ) from None
    initial = dict(rpc.initial_metadata())
    echoed = initial.get("x-request-id")
    check(
        echoed == request_id,
        f"{method_name(method)}: x-request-id {request_id!r} not echoed, got {echoed!r}",
    )
    return response, initial


def call_error(method, request, user_id, code, bearer=None, extra=()):
    """A unary call that must fail with `code`; returns the grpc.RpcError (also a grpc.Call).

    user_id None: a call without a token; bearer: that token instead of the user's.
    """
    md, request_id = metadata(user_id, bearer)
    md += tuple(extra)
    try:
        response = method(request, metadata=md, timeout=DEADLINE)
    except grpc.RpcError as err:
        check(
            err.code() == code,
            f"{method_name(method)}: expected {code}, got {err.code()}: {err.details()}",
        )
        # A trailers-only error carries its headers in the trailers.
        echoed = md_get(err.initial_metadata(), "x-request-id") or md_get(
            err.trailing_metadata(), "x-request-id"
        )
        check(
            echoed == request_id,
            f"{method_name(method)} ({code}): x-request-id {request_id!r} not echoed, "
            f"got {echoed!r}",
        )
        return err
    raise Failure(f"{method_name(method)}: expected {code}, got OK: {response}")


def method_name(method):
    name = getattr(method, "_method", None)  # grpcio's multi-callables keep the path
    if isinstance(name, bytes):
        name = name.decode()
    return name or "RPC"


def rich_status(err):
    """The google.rpc.Status in grpc-status-details-bin, checked against the call's status."""
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(err)
    except ValueError as mismatch:
        raise Failure(f"grpc-status-details-bin disagrees with grpc-status: {mismatch}") from None
    check(
        status is not None,
        f"{err.code()} without grpc-status-details-bin; trailers: {err.trailing_metadata()}",
    )
    return status


def unpack_details(status, message_type):
    found = []
    for detail in status.details:
        if detail.Is(message_type.DESCRIPTOR):
            message = message_type()
            detail.Unpack(message)
            found.append(message)
    return found


# --- scenarios -------------------------------------------------------------------------------


def scenario_health(channel, pb, pb_grpc):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    # Probes carry no token: health is public.
    for service, caller in (("", user("health")), (SERVICE, user("health")), ("", None)):
        response, _ = call(stub.Check, health_pb2.HealthCheckRequest(service=service), caller)
        check(
            response.status == health_pb2.HealthCheckResponse.SERVING,
            f"health of {service!r}: {health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}",
        )


def scenario_reflection(channel, pb, pb_grpc):
    """grpcio-reflection (v1alpha only) lists the services and describes PaymentService."""
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    # Reflection is public: the client sends no token.
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    for expected in (SERVICE, "grpc.health.v1.Health"):
        check(expected in services, f"reflection lists {sorted(services)}, not {expected}")
    # A pool of its own: the generated stubs already fill the default one.
    service = DescriptorPool(database).FindServiceByName(SERVICE)
    methods = {method.name for method in service.methods}
    expected = {"CreatePayment", "GetPayment", "ListPayments", "WatchPayments"}
    check(expected <= methods, f"{SERVICE} methods by reflection: {sorted(methods)}")
    watch = service.methods_by_name["WatchPayments"]
    check(
        watch.server_streaming and watch.output_type.full_name == "payments.v1.Payment",
        f"WatchPayments by reflection: {watch.output_type.full_name}, "
        f"server streaming {watch.server_streaming}",
    )


def scenario_create_and_get(channel, pb, pb_grpc):
    stub = pb_grpc.PaymentServiceStub(channel)
    u = user("create-get")
    request = pb.CreatePaymentRequest(
        user_id=u, amount_cents=1250, currency="EUR", description="coffee beans"
    )
    created, _ = call(stub.CreatePayment, request, u)
    check(created.id != "", f"CreatePayment returned no id: {created}")
    check(created.user_id == u, f"CreatePayment user_id {created.user_id!r}, want {u!r}")
    check(created.amount_cents == 1250, f"CreatePayment amount_cents {created.amount_cents}")
    check(created.currency == "EUR", f"CreatePayment currency {created.currency!r}")
    check(created.description == "coffee beans", f"description {created.description!r}")
    check(
        created.status == pb.PAYMENT_STATUS_ACCEPTED,
        f"CreatePayment status {pb.PaymentStatus.Name(created.status)}",
    )
    check(
        created.HasField("created_at") and created.created_at.seconds > 0,
        f"CreatePayment created_at not set: {created.created_at}",
    )

    get = pb.GetPaymentRequest(id=created.id)
    first, md1 = call(stub.GetPayment, get, u)
    check(first == created, f"GetPayment returned {first}, created {created}")
    check(md1.get("x-cache") == "miss", f"first GetPayment: x-cache {md1.get('x-cache')!r}, want 'miss'")
    second, md2 = call(stub.GetPayment, get, u)
    check(second == created, f"cached GetPayment returned {second}, created {created}")
    check(md2.get("x-cache") == "hit", f"second GetPayment: x-cache {md2.get('x-cache')!r}, want 'hit'")


def scenario_get_not_found(channel, pb, pb_grpc):
    stub = pb_grpc.PaymentServiceStub(channel)
    call_error(
        stub.GetPayment,
        pb.GetPaymentRequest(id=str(uuid.uuid4())),
        user("not-found"),
        grpc.StatusCode.NOT_FOUND,
    )


def scenario_validation(channel, pb, pb_grpc):
    from google.rpc import error_details_pb2

    stub = pb_grpc.PaymentServiceStub(channel)
    err = call_error(
        stub.CreatePayment,
        pb.CreatePaymentRequest(user_id="", amount_cents=0, currency="usd"),
        user("validation"),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    check(
        not err.initial_metadata(),
        f"a validation failure must be trailers-only; initial metadata: {err.initial_metadata()}",
    )
    status = rich_status(err)
    check(
        status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0],
        f"google.rpc.Status code {status.code}",
    )
    bad_requests = unpack_details(status, error_details_pb2.BadRequest)
    check(
        len(bad_requests) == 1,
        f"want one google.rpc.BadRequest detail, got {len(bad_requests)}: "
        f"{[d.type_url for d in status.details]}",
    )
    violations = bad_requests[0].field_violations
    fields = {v.field for v in violations}
    for field in ("user_id", "amount_cents", "currency"):
        check(field in fields, f"no violation for {field!r}; violations: {list(violations)}")
    for v in violations:
        check(v.description != "", f"violation of {v.field!r} has no description")


def scenario_rate_limit(channel, pb, pb_grpc):
    from google.rpc import error_details_pb2

    stub = pb_grpc.PaymentServiceStub(channel)
    u = user("rate-limit")
    request = pb.CreatePaymentRequest(user_id=u, amount_cents=100, currency="USD")
    for i in range(5):
        call(stub.CreatePayment, request, u)
    err = call_error(stub.CreatePayment, request, u, grpc.StatusCode.RESOURCE_EXHAUSTED)
    status = rich_status(err)
    retry = unpack_details(status, error_details_pb2.RetryInfo)
    check(
        len(retry) == 1,
        f"want one google.rpc.RetryInfo detail, got {len(retry)}: "
        f"{[d.type_url for d in status.details]}",
    )
    delay = retry[0].retry_delay
    check(
        delay.seconds > 0 or (delay.seconds == 0 and delay.nanos > 0),
        f"RetryInfo.retry_delay not positive: {delay}",
    )
    # The quota is per method and per caller: other methods and other users still pass.
    try:
        call(stub.ListPayments, pb.ListPaymentsRequest(user_id=u), u)
    except Failure as failure:
        raise Failure(
            "the quota must be per method: ListPayments for a user whose CreatePayment quota "
            f"is spent must still pass, but: {failure}"
        ) from None
    other = user("rate-limit-other")
    call(stub.CreatePayment, pb.CreatePaymentRequest(user_id=other, amount_cents=100, currency="USD"), other)


def scenario_list_invalidation(channel, pb, pb_grpc):
    stub = pb_grpc.PaymentServiceStub(channel)
    u = user("list")
    create = pb.CreatePaymentRequest(user_id=u, amount_cents=500, currency="GBP")
    p1, _ = call(stub.CreatePayment, create, u)
    page = pb.ListPaymentsRequest(user_id=u)

    listed, md = call(stub.ListPayments, page, u)
    check(md.get("x-cache") == "miss", f"first ListPayments: x-cache {md.get('x-cache')!r}, want 'miss'")
    check([p.id for p in listed.payments] == [p1.id], f"ListPayments: {listed}, want [{p1.id}]")
    again, md = call(stub.ListPayments, page, u)
    check(md.get("x-cache") == "hit", f"second ListPayments: x-cache {md.get('x-cache')!r}, want 'hit'")
    check(again == listed, f"cached ListPayments {again} differs from {listed}")

    p2, _ = call(stub.CreatePayment, create, u)
    after, md = call(stub.ListPayments, page, u)
    check(
        md.get("x-cache") == "miss",
        f"ListPayments after CreatePayment: x-cache {md.get('x-cache')!r}, want 'miss' "
        "(the user's cached pages were not dropped)",
    )
    ids = [p.id for p in after.payments]
    check(ids == [p2.id, p1.id], f"ListPayments after CreatePayment: ids {ids}, want newest first {[p2.id, p1.id]}")


def scenario_watch(channel, pb, pb_grpc):
    stub = pb_grpc.PaymentServiceStub(channel)
    u = user("watch")
    md, request_id = metadata(u)
    stream = stub.WatchPayments(pb.WatchPaymentsRequest(user_id=u), metadata=md, timeout=DEADLINE)
    received = queue.Queue()

    def read():
        try:
            for payment in stream:
                received.put(("payment", payment))
        except grpc.RpcError as err:
            received.put(("error", err))
        else:
            received.put(("end", None))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # The response headers arrive once the server's handler returned the stream, which
        # it does after subscribing the watch: a payment created now must be seen.
        echoed = md_get(stream.initial_metadata(), "x-request-id")
        check(echoed == request_id, f"WatchPayments: x-request-id {request_id!r} not echoed, got {echoed!r}")
        payment, _ = call(
            stub.CreatePayment,
            pb.CreatePaymentRequest(user_id=u, amount_cents=1, currency="JPY"),
            u,
        )
        try:
            item = received.get(timeout=DEADLINE)
        except queue.Empty:
            item = None
        check(item is not None, f"WatchPayments yielded nothing in {DEADLINE:.0f} s")
        kind, value = item
        if kind == "error":
            raise Failure(f"WatchPayments failed: {value.code()}: {value.details()}")
        check(kind == "payment", "WatchPayments ended before yielding a payment")
        check(value.user_id == u, f"WatchPayments yielded user_id {value.user_id!r}, want {u!r}")
        check(value.id == payment.id, f"WatchPayments yielded {value.id}, not the created {payment.id}")
    finally:
        stream.cancel()
        reader.join(timeout=DEADLINE)
    check(not reader.is_alive(), "WatchPayments reader still running after cancel")


def scenario_authentication(channel, pb, pb_grpc):
    stub = pb_grpc.PaymentServiceStub(channel)
    u = user("auth")
    create = pb.CreatePaymentRequest(user_id=u, amount_cents=100, currency="EUR")
    get = pb.GetPaymentRequest(id=str(uuid.uuid4()))
    for what, bearer in (
        ("no token", None),
        ("an expired token", token(u, ttl=-3600)),
        ("a token signed with another secret", token(u, secret="not-the-server-secret")),
    ):
        caller = None if bearer is None else u
        for method, request in ((stub.CreatePayment, create), (stub.GetPayment, get)):
            try:
                call_error(method, request, caller, grpc.StatusCode.UNAUTHENTICATED, bearer=bearer)
            except Failure as failure:
                raise Failure(f"with {what}: {failure}") from None


def scenario_own_payments_only(channel, pb, pb_grpc):
    stub = pb_grpc.PaymentServiceStub(channel)
    owner, other = user("owner"), user("other")
    created, _ = call(
        stub.CreatePayment, pb.CreatePaymentRequest(user_id=owner, amount_cents=42, currency="EUR"), owner
    )
    missing = call_error(
        stub.GetPayment, pb.GetPaymentRequest(id=str(uuid.uuid4())), other, grpc.StatusCode.NOT_FOUND
    )
    others = call_error(
        stub.GetPayment, pb.GetPaymentRequest(id=created.id), other, grpc.StatusCode.NOT_FOUND
    )
    check(
        others.details() == missing.details(),
        f"another user's payment must look missing: {others.details()!r} vs {missing.details()!r}",
    )
    denied = call_error(
        stub.ListPayments, pb.ListPaymentsRequest(user_id=owner), other, grpc.StatusCode.PERMISSION_DENIED
    )
    check(denied.details() == "permission denied", f"ListPayments of another user: {denied.details()!r}")
    denied = call_error(
        stub.CreatePayment,
        pb.CreatePaymentRequest(user_id=owner, amount_cents=1, currency="EUR"),
        other,
        grpc.StatusCode.PERMISSION_DENIED,
        extra=(("grpc-accept-language", "es"),),
    )
    # grpc-message stays English (for developers); the caller's language is in a
    # google.rpc.LocalizedMessage detail (Google's error model, AIP-193).
    check(denied.details() == "permission denied", f"asked in Spanish: {denied.details()!r}")
    from google.rpc import error_details_pb2

    localized = unpack_details(rich_status(denied), error_details_pb2.LocalizedMessage)
    check(len(localized) == 1, f"want one google.rpc.LocalizedMessage detail, got {localized}")
    check(
        (localized[0].locale, localized[0].message) == ("es", "permiso denegado"),
        f"in Spanish: {localized[0]}",
    )


def scenario_idempotency(channel, pb, pb_grpc):
    stub = pb_grpc.PaymentServiceStub(channel)
    u = user("idempotency")
    key = ("idempotency-key", f"py-{uuid.uuid4()}")
    request = pb.CreatePaymentRequest(user_id=u, amount_cents=300, currency="EUR", description="once")
    first, _ = call(stub.CreatePayment, request, u, extra=(key,))
    retried, _ = call(stub.CreatePayment, request, u, extra=(key,))
    check(retried.id == first.id, f"a retry with the same key made {retried.id}, not {first.id}")
    changed = pb.CreatePaymentRequest(user_id=u, amount_cents=301, currency="EUR", description="once")
    call_error(stub.CreatePayment, changed, u, grpc.StatusCode.ALREADY_EXISTS, extra=(key,))
    call_error(
        stub.CreatePayment, request, u, grpc.StatusCode.INVALID_ARGUMENT,
        extra=(("idempotency-key", "has space"),),
    )
    listed, _ = call(stub.ListPayments, pb.ListPaymentsRequest(user_id=u), u)
    check([p.id for p in listed.payments] == [first.id], f"one payment for the key: {listed}")


SCENARIOS = [
    ("health", scenario_health),
    ("reflection v1alpha (grpcio-reflection)", scenario_reflection),
    ("no, expired or foreign token is UNAUTHENTICATED", scenario_authentication),
    ("own payments only (NOT_FOUND, PERMISSION_DENIED)", scenario_own_payments_only),
    ("idempotent create", scenario_idempotency),
    ("create and get (cache miss then hit)", scenario_create_and_get),
    ("get unknown id is NOT_FOUND", scenario_get_not_found),
    ("validation details (BadRequest)", scenario_validation),
    ("rate limit (RetryInfo)", scenario_rate_limit),
    ("list cache dropped by create", scenario_list_invalidation),
    ("watch payments stream", scenario_watch),
]


def secure_channel(addr, ca, cert, key):
    """A TLS channel to addr verifying the server with the PEM CA, presenting cert and key."""

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key) if key else None,
        certificate_chain=read(cert) if cert else None,
    )
    # The server's certificate names localhost (and 127.0.0.1).
    return grpc.secure_channel(addr, credentials, options=[("grpc.ssl_target_name_override", "localhost")])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", required=True, help="host:port of the payments server")
    parser.add_argument("--proto-root", required=True, help="the workspace's proto directory")
    parser.add_argument("--jwt-secret", required=True, help="the server's AUTH_JWT_SECRET")
    parser.add_argument("--ca", help="PEM CA of the server's certificate: TLS instead of plaintext")
    parser.add_argument("--cert", help="PEM client certificate (mutual TLS, with --key)")
    parser.add_argument("--key", help="PEM key of --cert")
    args = parser.parse_args()
    global _jwt_secret
    _jwt_secret = args.jwt_secret

    with tempfile.TemporaryDirectory(prefix="payments-e2e-stubs-") as out_dir:
        try:
            generate_stubs(args.proto_root, out_dir)
            from payments.v1 import payments_pb2 as pb
            from payments.v1 import payments_pb2_grpc as pb_grpc
        except Exception as err:  # noqa: BLE001 - report any set-up failure the same way
            print(f"FAIL setup: cannot generate or import the stubs: {err}", file=sys.stderr)
            traceback.print_exc()
            return 1

        if args.ca and args.cert:
            # Mutual TLS: the server refuses a channel without a client certificate.
            with secure_channel(args.addr, args.ca, None, None) as anonymous:
                try:
                    stub = pb_grpc.PaymentServiceStub(anonymous)
                    stub.GetPayment(
                        pb.GetPaymentRequest(id="x"),
                        metadata=[("authorization", f"Bearer {token(user('anonymous'))}")],
                        timeout=DEADLINE,
                    )
                    print("FAIL mutual TLS: a channel without a client certificate was served", file=sys.stderr)
                    return 1
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.UNAVAILABLE:
                        print(f"FAIL mutual TLS: expected UNAVAILABLE, got {err.code()}", file=sys.stderr)
                        return 1
            print("ok mutual TLS refuses a client without a certificate", flush=True)

        with (
            secure_channel(args.addr, args.ca, args.cert, args.key)
            if args.ca
            else grpc.insecure_channel(args.addr)
        ) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=DEADLINE)
            except grpc.FutureTimeoutError:
                print(f"FAIL setup: no connection to {args.addr} in {DEADLINE:.0f} s", file=sys.stderr)
                return 1
            for name, scenario in SCENARIOS:
                try:
                    scenario(channel, pb, pb_grpc)
                except Failure as failure:
                    print(f"FAIL {name}: {failure}", file=sys.stderr)
                    return 1
                except Exception:  # noqa: BLE001 - an unexpected error is a failure too
                    print(f"FAIL {name}: unexpected error", file=sys.stderr)
                    traceback.print_exc()
                    return 1
                print(f"ok {name}", flush=True)
    print(f"all {len(SCENARIOS)} scenarios passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
