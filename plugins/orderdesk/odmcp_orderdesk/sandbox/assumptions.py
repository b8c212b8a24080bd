"""Every status code and message the sandbox invents, in one place.

OrderDesk documents only 200 for success, 429 for rate limiting and one error body
(``"Shipment Not Added"``). Everything else here is an ASSUMPTION (notes §4 and §11, open question 1):
no public source states the real codes or wording. Keeping them as module-level constants lets a test or
a benchmark change one (``assumptions.STATUS_NOT_FOUND = 410``) without touching the handlers, and makes
it obvious which behaviour is invented. Handlers read these names at call time, so patching works.
"""

from __future__ import annotations

# --- Status codes -----------------------------------------------------------------------------------
#: Documented (notes §3, HIGH): an empty leaky bucket answers 429 with ``X-Retry-After``.
STATUS_RATE_LIMITED = 429
#: Assumption (notes §4): missing or wrong ORDERDESK-STORE-ID / ORDERDESK-API-KEY.
STATUS_UNAUTHORIZED = 401
#: Assumption (notes §4): unknown order / item / shipment / inventory id, or unknown route.
STATUS_NOT_FOUND = 404
#: Assumption (notes §4: "400/422"): a request body or query parameter that fails validation.
STATUS_VALIDATION = 400
#: Assumption (notes §5.5: "wording and status code unknown"): a duplicate order on create.
STATUS_DUPLICATE = 400
#: Assumption (notes §5.11: "HTTP status undocumented"): duplicate tracking number on a shipment.
STATUS_SHIPMENT_NOT_ADDED = 400
#: Assumption (notes §1.2: PATCH/TRACE/CONNECT are "unsupported"): also used for a known path with a
#: method it does not serve (e.g. ``DELETE /orders``).
STATUS_METHOD_NOT_ALLOWED = 405
#: Assumption (notes §1.2 says only "do not send Content-Length/Content-Type or a body on GET"; what
#: OrderDesk answers is undocumented, and the official PHP client sends ``Content-Type`` on GET, so
#: OrderDesk probably tolerates it). Refusing it (``SandboxConfig.refuse_get_body``, on by default) is
#: stricter than OrderDesk may be, so a client that breaks the documented rule is caught in tests.
STATUS_GET_WITH_BODY = 400
#: NOT OrderDesk behaviour (notes §7): only used by the test-only ``strict_concurrency`` mode.
STATUS_CONFLICT = 409

# --- Messages ---------------------------------------------------------------------------------------
#: Assumption (notes §4 simulator suggestion).
MSG_UNAUTHORIZED = "Invalid store id or api key"
#: Assumption (notes §3: the 429 body is undocumented).
MSG_RATE_LIMITED = "Too Many Requests"
#: Assumption (notes §4 simulator suggestion).
MSG_ORDER_NOT_FOUND = "Order Not Found"
MSG_ITEM_NOT_FOUND = "Order Item Not Found"
MSG_SHIPMENT_NOT_FOUND = "Shipment Not Found"
MSG_INVENTORY_NOT_FOUND = "Inventory Item Not Found"
MSG_ROUTE_NOT_FOUND = "Not Found"
MSG_METHOD_NOT_ALLOWED = "Method Not Allowed"
#: Documented (notes §5.11): the only error body the vendor's docs show.
MSG_SHIPMENT_NOT_ADDED = "Shipment Not Added"
#: Assumption (notes §5.5): the vendor "names the existing order id"; exact wording unknown.
MSG_DUPLICATE_ORDER = "Duplicate Order: order {order_id} already exists with this source_id"
#: Assumptions: validation wording is undocumented.
MSG_INVALID_JSON = "Invalid JSON body"
MSG_NEEDS_ITEMS = "Order must contain at least one order item"
MSG_NEEDS_NAME = "Order must have a first and last name or a company in customer or shipping"
MSG_CHECKOUT_DATA_TOO_LONG = "checkout_data may not exceed 3500 characters"
MSG_METADATA_TOO_LONG = "order_metadata may not exceed 2000 characters"
MSG_LIMIT_TOO_HIGH = "limit may not exceed 500"
MSG_BAD_NUMBER = "{field} must be a number"
MSG_BAD_DATE = "{field} is not a valid date"
MSG_NEEDS_NOTE = "note is required"
MSG_NEEDS_ORDER_LIST = "order_id_list is required"
MSG_FOLDER_NOT_FOUND = "Folder Not Found"
MSG_NEEDS_ARRAY = "Request body must be a JSON array"
MSG_NEEDS_OBJECT = "Request body must be a JSON object"
MSG_INVENTORY_NEEDS_NAME_CODE = "name and code are required"
MSG_INVENTORY_DUPLICATE_CODE = "An inventory item with code {code} already exists"
MSG_GET_WITH_BODY = "GET requests must not carry a body, Content-Type or Content-Length"
#: NOT OrderDesk behaviour: the test-only strict-concurrency mode (notes §7).
MSG_CONFLICT = "Order has been modified (date_updated mismatch)"

# --- Behaviour: what is documented and what is assumed ---------------------------------------------
# * Base path (notes §1.1, HIGH): endpoints are ``/api/v2/<resource>``. Assumption: a path outside it,
#   or with a trailing slash, answers 404 ``Not Found`` without spending a rate-limit token (what
#   OrderDesk answers there is undocumented; the point is that nothing succeeds silently).
# * ``date_updated`` (notes §1.3, §5.6, HIGH): second resolution, UTC, changes on every update.
#   Assumption (MED): a write stamps the wall-clock second, so two writes in one second share it.
# * Timing (notes §2, HIGH that both forms exist): ``execution_time`` or ``"message": "Execution took
#   …"``. Assumption: which endpoint uses which form; by default the message form on ``GET /orders``
#   and ``GET /orders/{id}`` only, as in the docs' examples (``SandboxConfig.timing_style``).
# * Numeric strings (notes §1.3, HIGH that typing is inconsistent: ``"price": "10"`` vs ``19``).
#   Assumption: which orders carry strings (a seeded share, ``SandboxConfig.string_numbers``) and that
#   ``quantity`` is a string in those orders too (documented examples only show ``price`` as one).
# * ``search_start_date_local`` / ``search_end_date_local`` (notes §5.3, MED): the order date in the
#   store's local time. Assumption: "local" is the store's ``settings.timezone``.
