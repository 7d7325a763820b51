"""AWS Bedrock as a teacher, through boto3's Converse API (optional dependency: ``pip install boto3``).

``options``:

============  ==========================================  ===========================================
key           default                                     meaning
============  ==========================================  ===========================================
region        ``$AWS_REGION`` or ``$AWS_DEFAULT_REGION``  Bedrock region; required one way or the other
profile       null                                        an AWS profile name (``~/.aws/config``)
concurrency   4                                           requests in flight for this teacher
max_retries   5                                           botocore retries, ``adaptive`` mode (client-
                                                          side rate limiting + backoff on throttling)
timeout       60                                          read timeout of one attempt, in seconds
endpoint_url  null (the region's public endpoint)         another ``bedrock-runtime`` endpoint: a VPC
                                                          interface endpoint, a FIPS endpoint, or a
                                                          local stand-in (the tests' Converse server)
============  ==========================================  ===========================================

Credentials come only from the standard AWS chain (environment, profile, SSO,
container/instance role), never from params; no message this module builds
contains them (access-key-like strings are redacted from AWS error texts too).

Preflight: :meth:`BedrockBackend.apreflight` resolves the credential chain once,
before the teacher's first request (``boto3.session.Session(profile_name=...,
region_name=...).get_credentials()``, in a worker thread). No credentials fail at
once naming the teacher and where they were looked for (the profile, or the default
chain); an unknown profile is a ConfigError on ``options.profile``; a missing region
already fails at construction naming ``options.region`` and ``AWS_REGION`` /
``AWS_DEFAULT_REGION``. The preflight makes no Bedrock call: the cheap candidates
(``sts:GetCallerIdentity``, ``bedrock:GetFoundationModel``) need the network, so they
could not be tested offline, and the second needs an IAM permission the annotate
calls do not. Credentials that resolve but are refused (expired, revoked, no model
access) still fail every request with the AWS error, and the stage's
``annotate.max_failed_share`` check stops it then. Resolving the chain itself may
reach the network on a machine without other credentials: botocore asks the
instance-metadata service last (``AWS_EC2_METADATA_DISABLED=true`` turns that off).

The request: system messages go to ``system=[{"text": ...}]``, the user/assistant
turns to ``messages`` (consecutive turns of one role become one message with several
text blocks, as Converse requires alternation), and ``sampling`` maps to
``inferenceConfig``: ``max_tokens`` → ``maxTokens``, ``temperature``, ``top_p`` →
``topP``; a key absent from ``sampling`` is not sent (the model's default applies).
Converse has no seed: ``sampling.seed`` is ignored by Bedrock (it still keys the cache).

System prompts: per the Bedrock user guide ("Supported models and model features"),
Amazon Titan text models and Mistral AI *Instruct* models (Mistral 7B, Mixtral 8x7B),
as well as Cohere Command (text/light) and AI21 Jurassic-2, take no system prompt
through Converse. For model ids matching :data:`NO_SYSTEM_PROMPT` (a cross-region
prefix such as ``us.`` is ignored), the system text is folded into the first user
message. For other ids a ``ValidationException`` that mentions "system" on a request
that had one is retried once with the system folded, and folding is then kept for
this teacher (detection by trying, as the transformers backend does).

The call is synchronous; :meth:`acomplete` runs it in a worker thread (a pool of
``concurrency`` threads per teacher rather than ``asyncio.to_thread``'s shared default
pool, which has only ``cpus + 4`` threads). boto3 clients are thread-safe; each
backend makes its own ``boto3.session.Session`` (sessions are not).

Errors after botocore's own retries become :class:`BackendError` naming the model id,
region, the AWS error code and message, and what to do.

The paper's teachers (Bedrock model ids, see :data:`PAPER_TEACHERS`):
``amazon.titan-text-premier-v1:0`` (Titan Text G1 - Premier; us-east-1),
``mistral.mixtral-8x7b-instruct-v0:1`` and ``mistral.mistral-7b-instruct-v0:2``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...errors import ConfigError
from ..base import Backend, BackendError, PreflightError, Request, TeacherConfig, fold_system

log = logging.getLogger(__name__)

PAPER_TEACHERS = {
    "titan_premier": "amazon.titan-text-premier-v1:0",
    "mixtral_8x7b": "mistral.mixtral-8x7b-instruct-v0:1",
    "mistral_7b": "mistral.mistral-7b-instruct-v0:2",
}
# model-id prefixes whose Converse API takes no system prompt (Bedrock user guide,
# "Supported models and model features": System prompts = No)
NO_SYSTEM_PROMPT = (
    "amazon.titan-text",
    "mistral.mistral-7b-instruct",
    "mistral.mixtral-8x7b-instruct",
    "cohere.command-text",
    "cohere.command-light-text",
    "ai21.j2",
)
OPTIONS = ("region", "profile", "concurrency", "max_retries", "timeout", "endpoint_url")
# cross-region inference profile ids are "<geo>.<model id>"
_GEO_PREFIX = re.compile(r"^(?:us|eu|apac|us-gov|ca|jp|au|global)\.")

_TRANSIENT_HINT = {
    "ThrottlingException": "still throttled after {retries} retries: lower options.concurrency or ask for a "
    "higher quota (Service Quotas, Amazon Bedrock)",
    "ServiceUnavailableException": "the service was unavailable after {retries} retries: try again later",
    "InternalServerException": "internal server error after {retries} retries: try again later",
    "ModelNotReadyException": "the model was not ready after {retries} retries: try again later",
    "ModelTimeoutException": "the model took too long to answer: shorten the prompt or sampling.max_tokens, "
    "or raise options.timeout",
}
_HINT = {
    "AccessDeniedException": "request model access in the Bedrock console (Model access) for this region, and "
    "check that the IAM identity may call bedrock:InvokeModel",
    "ValidationException": "the request was rejected: check the sampling values against the model's limits "
    "and the chat's roles",
    "ResourceNotFoundException": "unknown model id in this region: check the id and region "
    "(`aws bedrock list-foundation-models --region <region>`)",
    "ModelErrorException": "the model failed to process the request",
    "UnrecognizedClientException": "the AWS credentials were rejected: refresh them in the standard chain",
    "ExpiredTokenException": "the AWS session token has expired: refresh the credentials",
    "InvalidSignatureException": "the request signature was rejected: check the credentials and clock",
}
_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
_SECRET_LIKE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40,}(?![A-Za-z0-9/+=])")


def _redact(text: str) -> str:
    """Remove anything shaped like an AWS access key id or secret key from an error text."""
    return _SECRET_LIKE.sub("<redacted>", _KEY_ID.sub("<redacted-key-id>", text))


def supports_system_prompt(model_id: str) -> bool:
    """Whether Converse takes a ``system`` prompt for this model id (False: fold it into the user message)."""
    base = _GEO_PREFIX.sub("", model_id.rsplit("/", 1)[-1])
    return not base.startswith(NO_SYSTEM_PROMPT)


def _boto3_missing() -> bool:
    try:
        return importlib.util.find_spec("boto3") is None
    except (ImportError, ValueError):  # sys.modules["boto3"] is None or has no spec
        return True


class BedrockBackend(Backend):
    """A Bedrock model through ``bedrock-runtime`` ``converse``, run in worker threads."""

    kind = "bedrock"

    def __init__(self, teacher: TeacherConfig):
        super().__init__(teacher)
        prefix = self._prefix = teacher.check_option_keys(OPTIONS)
        opts = teacher.options
        if _boto3_missing():
            raise ConfigError(
                f"annotate.teachers[{teacher.name}].backend",
                "the bedrock backend needs boto3, which is not installed: pip install boto3",
            )
        region = opts.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not isinstance(region, str) or not region:
            raise ConfigError(
                f"{prefix}.region", f"required: set it, or AWS_REGION / AWS_DEFAULT_REGION (got {opts.get('region')!r})"
            )
        self.region = region
        profile = opts.get("profile")
        if profile is not None and (not isinstance(profile, str) or not profile):
            raise ConfigError(f"{prefix}.profile", f"must be an AWS profile name or null, got {profile!r}")
        self.profile: str | None = profile
        self.concurrency = self._int(opts, "concurrency", 4, 1)
        self.max_retries = self._int(opts, "max_retries", 5, 0)
        timeout = opts.get("timeout", 60)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"{prefix}.timeout", f"must be a number of seconds > 0, got {timeout!r}")
        self.timeout = float(timeout)
        endpoint = opts.get("endpoint_url")
        if endpoint is not None and (
            not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")) or "@" in endpoint
        ):
            raise ConfigError(
                f"{prefix}.endpoint_url", f"must be an http:// or https:// URL without credentials, got {endpoint!r}"
            )
        self.endpoint_url: str | None = endpoint
        self._fold = not supports_system_prompt(teacher.model)
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if "seed" in teacher.sampling:
            log.info("teacher %s: Bedrock Converse takes no seed; sampling.seed only keys the cache", teacher.name)

    def _int(self, opts: dict[str, Any], key: str, default: int, minimum: int) -> int:
        value = opts.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{self._prefix}.{key}", f"must be an integer >= {minimum}, got {value!r}")
        return value

    # ----------------------------------------------------------------- client

    def _session(self) -> Any:
        """A new boto3 session for this teacher's profile and region (sessions are not thread-safe)."""
        try:
            import boto3
            from botocore.exceptions import ProfileNotFound
        except ImportError as e:
            raise ConfigError(
                f"annotate.teachers[{self.teacher.name}].backend",
                f"the bedrock backend needs boto3 ({e}): pip install boto3",
            ) from None
        try:
            return boto3.session.Session(profile_name=self.profile, region_name=self.region)
        except ProfileNotFound:
            raise ConfigError(
                f"{self._prefix}.profile", f"AWS profile {self.profile!r} not found in the AWS config files"
            ) from None

    def client(self) -> Any:
        """The boto3 ``bedrock-runtime`` client, created on first use (thread-safe)."""
        with self._lock:
            if self._client is None:
                session = self._session()
                from botocore.config import Config

                config = Config(
                    region_name=self.region,
                    retries={"max_attempts": self.max_retries, "mode": "adaptive"},
                    read_timeout=self.timeout,
                    max_pool_connections=max(10, self.concurrency),
                )
                self._client = session.client("bedrock-runtime", config=config, endpoint_url=self.endpoint_url)
            return self._client

    # ----------------------------------------------------------------- preflight

    def check_credentials(self) -> None:
        """Resolve the AWS credential chain once; raise PreflightError if it yields none (see the module docstring)."""
        from botocore.exceptions import BotoCoreError

        session = self._session()
        try:
            credentials = session.get_credentials()
        except BotoCoreError as e:  # e.g. a broken credential_process, an SSO token that cannot be read
            raise PreflightError(
                f"preflight: {self._where()}: resolving the AWS credentials failed: "
                f"{type(e).__name__}: {_redact(str(e))}"
            ) from None
        if credentials is None:
            if self.profile:
                source = f"AWS profile {self.profile!r} ({self._prefix}.profile)"
            elif os.environ.get("AWS_PROFILE"):
                source = f"AWS profile {os.environ['AWS_PROFILE']!r} (from $AWS_PROFILE)"
            else:
                source = (
                    "the default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
                    "~/.aws/credentials, instance role"
                )
            raise PreflightError(
                f"preflight: {self._where()}: no AWS credentials found in {source}; configure "
                "them (`aws configure`, `aws sso login`, or export AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY), or name a profile that has them in "
                f"{self._prefix}.profile"
            )

    async def apreflight(self) -> None:
        await asyncio.to_thread(self.check_credentials)

    # ----------------------------------------------------------------- request and reply

    def build_request(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The keyword arguments of ``converse`` for a chat."""
        chat = fold_system(messages) if self._fold else messages
        system = [{"text": m["content"]} for m in chat if m.get("role") == "system"]
        turns: list[dict[str, Any]] = []
        for m in chat:
            role = m.get("role")
            if role == "system":
                continue
            if role not in ("user", "assistant"):
                raise BackendError(
                    f"{self._where()}: a chat message has role {role!r}; Converse takes user and assistant (and system)"
                )
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"].append({"text": m["content"]})
            else:
                turns.append({"role": role, "content": [{"text": m["content"]}]})
        kwargs: dict[str, Any] = {"modelId": self.teacher.model, "messages": turns}
        if system:
            kwargs["system"] = system
        s = self.teacher.sampling
        inference: dict[str, Any] = {}
        if "max_tokens" in s:
            inference["maxTokens"] = int(s["max_tokens"])
        if "temperature" in s:
            inference["temperature"] = float(s["temperature"])
        if "top_p" in s:
            inference["topP"] = float(s["top_p"])
        if inference:
            kwargs["inferenceConfig"] = inference
        return kwargs

    def _where(self, request: Request | None = None) -> str:
        where = f"bedrock model {self.teacher.model} in {self.region} (teacher {self.teacher.name})"
        if self.endpoint_url:
            where += f" at {self.endpoint_url}"
        if request is not None:
            where += f", item {request.item_id!r}"
        return where

    def _reply_text(self, response: dict[str, Any], request: Request | None) -> str:
        blocks = (((response or {}).get("output") or {}).get("message") or {}).get("content") or []
        texts = [b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)]
        if not texts:
            raise BackendError(
                f"{self._where(request)}: the reply has no text (stopReason {response.get('stopReason')!r})"
            )
        return "".join(texts)

    # ----------------------------------------------------------------- calls

    def complete(self, messages: list[dict[str, str]], request: Request | None = None) -> str:
        """One synchronous Converse call; raises BackendError (ConfigError for setup problems)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        client = self.client()
        kwargs = self.build_request(messages)
        try:
            try:
                response = client.converse(**kwargs)
            except ClientError as e:
                if self._rejects_system(e, kwargs):
                    self._fold = True
                    log.info(
                        "teacher %s: %s rejects a system prompt; folding it into the first user message",
                        self.teacher.name,
                        self.teacher.model,
                    )
                    response = client.converse(**self.build_request(messages))
                else:
                    raise
        except ClientError as e:
            raise self._client_error(e, request) from e
        except NoCredentialsError:
            raise BackendError(
                f"{self._where(request)}: no AWS credentials found in the standard chain "
                "(environment, profile, SSO, role): configure them, e.g. `aws configure` or "
                "AWS_PROFILE"
            ) from None
        except BotoCoreError as e:
            raise BackendError(
                f"{self._where(request)}: {type(e).__name__}: {_redact(str(e))} (after {self.max_retries} retries)"
            ) from e
        return self._reply_text(response, request)

    def _rejects_system(self, e: Exception, kwargs: dict[str, Any]) -> bool:
        err = getattr(e, "response", {}).get("Error", {})
        return (
            not self._fold
            and "system" in kwargs
            and err.get("Code") == "ValidationException"
            and "system" in str(err.get("Message", "")).lower()
        )

    def _client_error(self, e: Exception, request: Request | None) -> BackendError:
        err = getattr(e, "response", {}).get("Error", {})
        code = str(err.get("Code") or "ClientError")
        message = _redact(str(err.get("Message") or e))
        hint = _TRANSIENT_HINT.get(code) or _HINT.get(code) or "see the AWS error"
        hint = hint.format(retries=self.max_retries)
        return BackendError(f"{self._where(request)}: {code}: {message} ({hint})")

    async def acomplete(self, messages: list[dict[str, str]], request: Request | None = None) -> str:
        # like asyncio.to_thread, but on this teacher's own pool of `concurrency` threads: the loop's
        # default pool has min(32, cpus + 4) threads shared by every teacher (6 on 2 cores)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix=f"bedrock-{self.teacher.name}"
                )
            pool = self._pool
        return await asyncio.get_running_loop().run_in_executor(
            pool, functools.partial(self.complete, messages, request)
        )

    async def aclose(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if client is not None and hasattr(client, "close"):
            client.close()
