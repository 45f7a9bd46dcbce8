// Where CesiumJS finds its workers and assets: the gateway's vendored copy (set before Cesium.js loads).
window.CESIUM_BASE_URL = "/static/vendor/cesium/";
