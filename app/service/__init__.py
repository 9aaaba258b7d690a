"""The bundled Spine service layer (ASGI). Never imports app.card, app.client or app.ui."""
