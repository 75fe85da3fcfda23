"""The emulated API server: HTTP routing, the object store, watches, patches and apply.

:mod:`.server` is the aiohttp application; :mod:`.routing` parses the REST paths,
:mod:`.objects` creates, updates and deletes objects in the :mod:`.store`, :mod:`.watch` serves
watches, :mod:`.patch` and :mod:`.apply` the patch kinds and server-side apply,
:mod:`.protobuf` decodes protobuf bodies, :mod:`.discovery` and :mod:`.tables` answer discovery
and kubectl's tables, :mod:`.validation`, :mod:`.workloads` and :mod:`.crds` default and
validate objects.
"""
