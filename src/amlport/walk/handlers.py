"""Per-file handlers: turn the bytes of one blob into inventory records and findings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from amlport.errors import ParseError
from amlport.model import findings as F
from amlport.model.findings import Finding, Severity
from amlport.model.inventory import Environment, InputRef, Inventory, Loc, Model, Pointer
from amlport.secrets import describe, find_secrets_in_bytes, redact
from amlport.storage.base import BlobInfo
from amlport.walk import classify as C
from amlport.walk import designer, early, environments, logs, parsers, runtimes, specs

SPECS_CONTAINER = "specs"  # pseudo-container of files given with --specs DIR


class Handlers:
    OUTPUT_MARKERS = early.OUTPUT_MARKERS

    def __init__(self, inv: Inventory, *, scan_secrets: bool) -> None:
        self.inv = inv
        self.scan_secrets = scan_secrets
        self._workdirs: set[Loc] = set()
        # Blobs read only in part: the walker scans the whole of them for secrets as a stream.
        self.streamed: set[tuple[str, str]] = set()
        # The byte scan of the bytes being handled, done ahead by a worker process (the
        # walker sets it around one file's handler; ``on_scanned_file`` takes it for exactly
        # those bytes, the same object, and scans any other bytes itself).
        self.scanned: tuple[bytes, Counter[str]] | None = None
        # What a worker process parsed of the same bytes (``early.py``), set the same way:
        # a handler takes it for exactly those bytes and parses any other bytes itself.
        self.parsed: tuple[bytes, early.Early] | None = None

    # -- helpers -------------------------------------------------------------------------------
    def datastore(self, container: str) -> str:
        return self.inv.source.datastore_of(container) or container

    def _finding(self, code: str, path: str, msg: str, sev: Severity = Severity.MEDIUM) -> None:
        # A blob's name may hold a credential (a SAS pasted into a path): never in a finding.
        self.inv.findings.append(Finding(code, redact(path), redact(msg), sev))

    def text(self, blob: BlobInfo, data: bytes, *, scan: bool = True) -> str:
        """Decode a text file, reporting non-UTF-8 content and any secret it holds."""
        text, utf8 = parsers.decode_text(data)
        self._decoded(blob, data, utf8, scan=scan)
        return text

    def _decoded(self, blob: BlobInfo, data: bytes, utf8: bool, *, scan: bool = True) -> None:
        """What ``text`` reports of a file once decoded: non-UTF-8 text, then its secrets."""
        if not utf8:
            path = f"{blob.container}/{blob.name}"
            self._finding(F.NON_UTF8_TEXT, path, "not valid UTF-8; read as Latin-1", Severity.LOW)
        if scan:
            self.on_scanned_file(blob, data)

    def _early(self, data: bytes, kind: str) -> early.Early | None:
        """The record a worker parsed of exactly ``data``, when it is of ``kind``."""
        ahead = self.parsed
        if ahead is not None and ahead[0] is data and ahead[1][0] == kind:
            return ahead[1]
        return None

    def on_scanned_file(self, blob: BlobInfo, data: bytes) -> None:
        """The secret scan of one file (raw bytes: any encoding, UTF-16 too); a file read in
        part is scanned whole as a stream by the walker instead."""
        if self.scan_secrets and blob.key not in self.streamed:
            ahead = self.scanned
            found = ahead[1] if ahead is not None and ahead[0] is data else None
            if found is None:
                found = find_secrets_in_bytes(data)
            self.report_secrets(f"{blob.container}/{blob.name}", found)

    def report_secrets(self, path: str, found: Counter[str]) -> None:
        if found:
            kinds = describe(found)
            self._finding(
                F.SECRET_IN_FILE,
                path,
                f"contains credentials ({kinds}); rotate them, amlport redacts them on export",
                Severity.HIGH,
            )

    def only_scanned(self, blob: BlobInfo) -> bool:
        """A log read for its secrets alone (not for lineage): a stream scan covers all of it."""
        ap = C.classify_artifact(blob.name)
        if ap is not None and ap.role in ("log", "execution_log"):
            return not logs.is_lineage_log(ap.rest)
        base = blob.name.rsplit("/", 1)[-1]
        structured = C.is_spec_candidate(blob.name) or C.is_dockerfile(blob.name)
        return C.is_secret_prone(blob.name) and not structured and base != "MLmodel"

    # -- logs ----------------------------------------------------------------------------------
    def wants_log(self, rest: str) -> bool:
        return self.scan_secrets or logs.is_lineage_log(rest)

    def on_log(self, blob: BlobInfo, data: bytes) -> None:
        ahead = self._early(data, early.LOG)
        if ahead is None:
            text = self.text(blob, data)
        else:  # decoded and parsed by the worker that read it (``early.py``)
            self._decoded(blob, data, ahead[1])
        ap = C.classify_artifact(blob.name)
        if ap is None or not logs.is_lineage_log(ap.rest):
            return
        if ahead is None:
            facts, times = logs.read_log(text), runtimes.read_times(ap.rest, text)
        else:
            facts, times = early.log_facts(ahead[2]), early.run_times(ahead[3])
        run = self.inv.run(ap.run_id)
        runtimes.merge(run, times)  # started / ended / status, from its own lines
        for node_id, child_id in facts.children:
            child = self.inv.run(child_id)
            child.parent_id, child.node_id = ap.run_id, node_id or child.node_id
            if child_id not in run.children:
                run.children.append(child_id)
        if facts.module:
            run.module, run.module_evidence = facts.module, "log"
            run.parameters.update(facts.parameters)
        for datastore, path, port in facts.locations:
            run.inputs.append(InputRef(Loc(datastore, path), port, evidence=ap.rest))
        designer.note_log_facts(self.inv, run, facts)

    # -- designer pointers and outputs -------------------------------------------------------
    def on_pointer_candidate(self, blob: BlobInfo, data: bytes) -> None:
        ap = C.classify_artifact(blob.name)
        assert ap is not None
        if not data.lstrip().startswith(b"{"):
            self.inv.run(ap.run_id).artifacts.append(ap.rest)
            return
        path = f"{blob.container}/{blob.name}"
        text = self.text(blob, data, scan=False)
        try:
            doc = parsers.parse_pointer(text, path)
        except ParseError as exc:
            if "not a designer pointer" not in exc.reason:
                raise
            self.inv.run(ap.run_id).artifacts.append(ap.rest)
            return
        if not doc.has_sas:
            self.text(blob, data)  # the secret scan, for anything else the pointer holds
        target = parsers.pointer_target(doc, None)
        self.inv.pointers.append(Pointer(path, ap.run_id, ap.rest, target, doc.has_sas))
        if doc.has_sas:
            self._finding(
                F.SAS_IN_POINTER,
                path,
                "pointer carries a SAS token (SasToken is not null); it is never exported",
                Severity.HIGH,
            )

    def output_marker_reader(self, loc: Loc) -> Callable[[BlobInfo, bytes], None]:
        def read(blob: BlobInfo, data: bytes) -> None:
            out = self.inv.outputs[loc]
            ahead = self._early(data, early.MARKER)
            if ahead is None:
                path = f"{blob.container}/{blob.name}"
                text = self.text(blob, data)
                kind = early.marker_format(blob.name.rsplit("/", 1)[-1], text, path)
            else:  # decoded and parsed by the worker that read it (``early.py``)
                self._decoded(blob, data, ahead[1])
                kind = ahead[2]
            if out.format in ("files", "ModelDirectory") or kind == "ILearner":
                out.format = kind

        return read

    def note_workdir(self, loc: Loc, blob: BlobInfo) -> None:
        if loc in self._workdirs:
            return
        self._workdirs.add(loc)
        self._finding(
            F.LEGACY_WORKDIR,
            f"{blob.container}/{loc.path}",
            "legacy v1 run working directory (code snapshot, azureml-setup); "
            "kept as a run record, not an output",
            Severity.LOW,
        )

    # -- models ----------------------------------------------------------------------------------
    def on_mlmodel(self, blob: BlobInfo, data: bytes) -> None:
        path = f"{blob.container}/{blob.name}"
        doc = parsers.parse_mlmodel(self.text(blob, data), path)
        folder = blob.name.rsplit("/", 1)[0] if "/" in blob.name else ""
        loc = Loc(self.datastore(blob.container), folder)
        env = f"{loc}/{doc.env_file}" if doc.env_file else None
        signature = doc.signature
        for part, reason in (signature.problems if signature else {}).items():
            self._finding(
                F.MALFORMED_FILE,
                path,
                f"MLmodel signature {part} not read ({reason}); the model is kept without it",
                Severity.LOW,
            )
        self.inv.models[loc] = Model(
            loc=loc,
            format="mlflow",
            run_id=doc.run_id or self._folder_run(blob),
            flavors=doc.flavors,
            portable=True,
            portability="MLflow model: loads with mlflow.pyfunc in any workspace",
            environment=env,
            signature=signature.to_dict() if signature and signature.parts else None,
        )

    def _folder_run(self, blob: BlobInfo) -> str | None:
        """The run whose ``ExperimentRun/dcid.<run>/`` folder holds an MLmodel that names no
        ``run_id`` (MLflow leaves it out when a model is saved, not logged, into the run)."""
        if blob.container != self.inv.source.artifact_container:
            return None
        ap = C.classify_artifact(blob.name)
        return ap.run_id if ap is not None else None

    # -- specs, environments ---------------------------------------------------------------------
    def on_spec_file(self, blob: BlobInfo, data: bytes) -> None:
        spec_id = f"{self.datastore(blob.container)}/{blob.name}"
        path = f"{blob.container}/{blob.name}"
        text = self.text(blob, data)
        if C.is_dockerfile(blob.name):
            self._add_env(specs.parse_dockerfile(text, spec_id, path))
            return
        doc = parsers.load_yaml(text, path)
        kind = specs.spec_kind(doc)
        if kind is None or not isinstance(doc, dict):
            self.inv.unknown["yaml"] += 1
        elif kind == "python_env":
            return  # described by the model's conda file; nothing more to record
        elif kind == "pipeline":
            self.inv.pipelines[spec_id] = specs.parse_pipeline(doc, spec_id, path)
        elif kind in ("component", "command_job", "pipeline_component"):
            self.inv.components[spec_id] = specs.parse_component(doc, spec_id, path, kind)
        elif kind == "environment":  # with what it is built from (walk/environments.py)
            self._add_env(environments.described(specs.parse_environment(doc, spec_id, path), doc))
        elif kind == "conda":
            self._add_env(environments.described(specs.parse_conda(doc, spec_id, path), doc))
        else:
            self.inv.assets[spec_id] = specs.parse_asset(doc, spec_id, path, kind)

    def _add_env(self, env: Environment) -> None:
        self.inv.environments[env.env_id] = env
