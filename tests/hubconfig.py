"""Pieces shared by the configuration files of the hubs that tests start."""

MEMORY_PROXY = '''
from jupyterhub.proxy import Proxy


class RouteMemoryProxy(Proxy):
    """Keeps routes in memory: no proxy process, the hub serves /hub/ itself."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.routes = {}

    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self.routes)
'''
