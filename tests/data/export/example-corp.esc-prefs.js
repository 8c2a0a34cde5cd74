pref("esc.global.phone.home.url", "http://server.example.com:7888/cgi-bin/home/index.cgi");
