import gc
from gateway import hookimpl
from gateway.errors import AuthError
from gateway.testing import connect

class A:
    @hookimpl
    def gateway_tool_pre_invoke(self, call):
        async def check():
            raise AuthError("A says no")
        return check()

class B:
    @hookimpl
    def gateway_tool_pre_invoke(self, call):
        async def check():
            return None
        return check()

class SyncNo:
    @hookimpl
    def gateway_tool_pre_invoke(self, call):
        raise AuthError("sync no")

async def test_async_refusal(gateway_factory):
    async with connect(gateway_factory(plugins=[A(), B()])) as client:
        r = await client.call_tool("gateway_ping", {})
        print(r.is_error, r.structured_content)
    gc.collect()

async def test_sync_refusal(gateway_factory):
    async with connect(gateway_factory(plugins=[SyncNo(), B()])) as client:
        r = await client.call_tool("gateway_ping", {})
        print(r.is_error, r.structured_content)
    gc.collect()
