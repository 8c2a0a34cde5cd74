pref("esc.global.phone.home.url", "https://eng.example.com:8443/tps/phoneHome");
