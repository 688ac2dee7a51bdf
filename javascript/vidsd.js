// vidsd: hover texts for the suite's widgets.
// Each accordion carries a hidden <div id="vidsd_titles_..." data-titles='{"elem_id": "text"}'>
// (the texts come from lib_vidsd.config); on every UI update they are put on the matching elements.
(function() {
    const titles = {};

    window.vidsdSetTitles = function(map) {
        Object.assign(titles, map || {});
        applyTitles();
    };

    function collect(app) {
        app.querySelectorAll("[id^='vidsd_titles_']").forEach(function(el) {
            if (el.dataset.vidsdRead) {
                return;
            }
            try {
                Object.assign(titles, JSON.parse(el.dataset.titles || "{}"));
                el.dataset.vidsdRead = "1";
            } catch (e) {
                console.error("vidsd: bad titles data", e);
            }
        });
    }

    function applyTitles() {
        const app = typeof gradioApp === "function" ? gradioApp() : document;
        collect(app);
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
