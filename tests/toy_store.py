"""A second store type, as a third party would ship it: ``wiki`` stores of pages, with optimistic locking.

It registers its store type and settings model (:class:`WikiStore`), its tools (``wiki.get``,
``wiki.update``: tools of the ``wiki`` store type, because this plugin registered that one type) and
the fetch and upload hooks, which decline every ref that is not a page of a ``wiki`` store. Pages live
in memory, per upstream store id. Nothing in it is OrderDesk's, and nothing in the host is mocked.

``PLUGIN`` is what the entry point ``toy_store:PLUGIN`` loads (tests/toy_store_dist/), so the suite can
run with this plugin installed next to OrderDesk.
"""

from __future__ import annotations

from typing import Any, ClassVar

from odmcp import hookimpl
from odmcp.config import StoreSettings
from odmcp.errors import Conflict, NotFound, OutcomeUnknown
from odmcp.refs import Ref
from odmcp.tools import ToolTable

TOOLS = ToolTable(toolset="wiki")


class WikiStore(StoreSettings, forbid_unknown_fields=True, kw_only=True):
    """One wiki: ``store_id`` is the wiki's own id; ``title`` is its first page's title."""

    STORE_TYPE: ClassVar[str] = "wiki"
    ENV: ClassVar[dict[str, str]] = {"WIKI_ID": "store_id"}

    title: str = "Returns"


@TOOLS.tool("wiki.get", title="Get a page", read_only=True, object_arg="page_id")
async def wiki_get(gateway: Any, page_id: str, store: str | None = None) -> dict[str, Any]:
    """Get one page of a wiki (cached). Errors: NOT_FOUND."""
    return await gateway.workflow.read(Ref(gateway.store(store).name, "page", page_id))


@TOOLS.tool("wiki.update", title="Update a page", read_only=False, destructive=True, object_arg="page_id")
async def wiki_update(
    gateway: Any, page_id: str, changes: dict[str, Any], store: str | None = None
) -> dict[str, Any]:
    """Change a page safely (fetch, merge, upload, retried on conflict). Errors: NOT_FOUND, CONFLICT."""
    result = await gateway.workflow.mutate(Ref(gateway.store(store).name, "page", page_id), changes)
    return {"page": result.obj, "attempts": result.attempts, "reconciled": result.reconciled}


class WikiPlugin:
    """Pages per wiki, with a version number the upload checks."""

    def __init__(self, kinds: tuple[str, ...] = ("page",)) -> None:
        #: the object kinds it serves (another store type may use the same names: ``order``)
        self.kinds = kinds
        #: store id -> page id -> page
        self.pages: dict[str, dict[str, dict[str, Any]]] = {}
        self.fetches = 0
        self.edit_after_fetch = 0  # someone else edits the page right after this many fetches
        self.unclear_uploads = 0  # uploads applied but answered with a lost connection

    def wiki(self, gateway: Any, store: str) -> dict[str, dict[str, Any]]:
        settings = gateway.config.store(store)
        return self.pages.setdefault(
            settings.store_id, {"1": {"id": "1", "title": settings.title, "version": 1}}
        )

    def ours(self, ref: Ref, gateway: Any) -> bool:
        return ref.kind in self.kinds and any(s.name == ref.store for s in gateway.config.stores_of("wiki"))

    @hookimpl
    def gateway_register_config(self, register: Any) -> None:
        register("stores", WikiStore)

    @hookimpl
    def gateway_register_tools(self, register: Any) -> None:
        TOOLS.register_into(register)

    @hookimpl
    def gateway_instructions(self, gateway: Any) -> str | None:
        if not gateway.serves_type("wiki"):
            return None
        return "Wiki pages: wiki_get reads a page, wiki_update changes it safely."

    @hookimpl
    def gateway_fetch(self, ref: Ref, gateway: Any) -> Any:
        if not self.ours(ref, gateway):
            return None

        async def fetch() -> dict[str, Any]:
            self.fetches += 1
            pages = self.wiki(gateway, ref.store)
            if ref.id not in pages:
                raise NotFound(f"page {ref.id} not found", hint="Page ids are small numbers, like 1.")
            page = dict(pages[ref.id])
            if self.edit_after_fetch:
                self.edit_after_fetch -= 1
                pages[ref.id] = {**pages[ref.id], "views": 7, "version": page["version"] + 1}
            return page

        return fetch()

    @hookimpl
    def gateway_upload(self, ref: Ref, obj: dict[str, Any], fetched: dict[str, Any], gateway: Any) -> Any:
        if not self.ours(ref, gateway):
            return None

        async def upload() -> dict[str, Any]:
            pages = self.wiki(gateway, ref.store)
            stored = pages[ref.id]
            if stored["version"] != fetched["version"]:
                raise Conflict(f"page {ref.id} changed since it was fetched")
            pages[ref.id] = {**obj, "version": stored["version"] + 1}
            if self.unclear_uploads:
                self.unclear_uploads -= 1
                raise OutcomeUnknown("the connection dropped after the page was sent")
            return dict(pages[ref.id])

        return upload()


class SecondWiki(WikiPlugin):
    """Another plugin that registers the store type ``wiki`` too (and the same tools)."""


PLUGIN = WikiPlugin()
