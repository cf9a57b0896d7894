document.getElementById("app").textContent = "Palaver";
