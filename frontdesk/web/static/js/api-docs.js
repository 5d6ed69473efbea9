// Starts the API documentation viewer of /docs (Swagger UI) or /redoc (ReDoc) on /openapi.json.
// The viewers' own files come from the fastapi-standalone-docs package (frontdesk/openapi.py).
const swagger = document.getElementById("swagger-ui");
if (swagger) {
  window.SwaggerUIBundle({
    url: swagger.dataset.openapiUrl,
    domNode: swagger,
    deepLinking: true,
    validatorUrl: null, // no call to an outside validator
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
}
const redoc = document.getElementById("redoc");
if (redoc) {
  window.Redoc.init(redoc.dataset.openapiUrl, { disableSearch: false, hideDownloadButton: false }, redoc);
}
