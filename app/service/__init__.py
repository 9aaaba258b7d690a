"""The bundled Spine service layer (ASGI). Never imports app.card, app.spine or app.ui."""
