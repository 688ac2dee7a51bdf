// vidsd: hover texts for the suite's widgets.
// Python side registers them with vidsdSetTitles({elem_id: text}) via the page's script tag or
// later scripts; each UI update applies them to elements whose id starts with "vidsd_".
(function() {
    const titles = {};

    window.vidsdSetTitles = function(map) {
        Object.assign(titles, map || {});
        applyTitles();
    };

    function applyTitles() {
        const app = typeof gradioApp === "function" ? gradioApp() : document;
        app.querySelectorAll("[id^='vidsd_']").forEach(function(el) {
            const text = titles[el.id];
            if (text && el.title !== text) {
                el.title = text;
            }
        });
    }

    if (typeof onUiUpdate === "function") {
        onUiUpdate(applyTitles);
    }
})();
