//! The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1): zlib is
//! primed with it in both directions of every connection.

/// The dictionary, 1423 bytes; its Adler-32 (the zlib dictionary id) is `0xe3c6a7c2`.
pub const DICTIONARY: &[u8] = b"\
    \x00\x00\x00\x07options\x00\x00\x00\x04h\
    ead\x00\x00\x00\x04post\x00\x00\x00\x03p\
    ut\x00\x00\x00\x06delete\x00\x00\x00\x05\
    trace\x00\x00\x00\x06accept\x00\
    \x00\x00\x0eaccept-charse\
    t\x00\x00\x00\x0faccept-enco\
    ding\x00\x00\x00\x0faccept-l\
    anguage\x00\x00\x00\x0daccep\
    t-ranges\x00\x00\x00\x03age\x00\
    \x00\x00\x05allow\x00\x00\x00\x0dauth\
    orization\x00\x00\x00\x0dcac\
    he-control\x00\x00\x00\x0aco\
    nnection\x00\x00\x00\x0ccont\
    ent-base\x00\x00\x00\x10cont\
    ent-encoding\x00\x00\x00\x10\
    content-language\
    \x00\x00\x00\x0econtent-leng\
    th\x00\x00\x00\x10content-lo\
    cation\x00\x00\x00\x0bconten\
    t-md5\x00\x00\x00\x0dcontent\
    -range\x00\x00\x00\x0cconten\
    t-type\x00\x00\x00\x04date\x00\x00\
    \x00\x04etag\x00\x00\x00\x06expect\
    \x00\x00\x00\x07expires\x00\x00\x00\x04f\
    rom\x00\x00\x00\x04host\x00\x00\x00\x08i\
    f-match\x00\x00\x00\x11if-mo\
    dified-since\x00\x00\x00\x0d\
    if-none-match\x00\x00\x00\
    \x08if-range\x00\x00\x00\x13if-\
    unmodified-since\
    \x00\x00\x00\x0dlast-modifie\
    d\x00\x00\x00\x08location\x00\x00\x00\
    \x0cmax-forwards\x00\x00\x00\
    \x06pragma\x00\x00\x00\x12proxy\
    -authenticate\x00\x00\x00\
    \x13proxy-authoriza\
    tion\x00\x00\x00\x05range\x00\x00\x00\
    \x07referer\x00\x00\x00\x0bretr\
    y-after\x00\x00\x00\x06serve\
    r\x00\x00\x00\x02te\x00\x00\x00\x07trail\
    er\x00\x00\x00\x11transfer-e\
    ncoding\x00\x00\x00\x07upgra\
    de\x00\x00\x00\x0auser-agent\
    \x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\
    \x00\x00\x07warning\x00\x00\x00\x10ww\
    w-authenticate\x00\x00\
    \x00\x06method\x00\x00\x00\x03get\x00\
    \x00\x00\x06status\x00\x00\x00\x06200\
    \x20OK\x00\x00\x00\x07version\x00\x00\
    \x00\x08HTTP/1.1\x00\x00\x00\x03ur\
    l\x00\x00\x00\x06public\x00\x00\x00\x0as\
    et-cookie\x00\x00\x00\x0akee\
    p-alive\x00\x00\x00\x06origi\
    n100101201202205\
    2063003023033043\
    0530630740240540\
    6407408409410411\
    4124134144154164\
    17502504505203 N\
    on-Authoritative\
    \x20Information204 \
    No Content301 Mo\
    ved Permanently4\
    00 Bad Request40\
    1 Unauthorized40\
    3 Forbidden404 N\
    ot Found500 Inte\
    rnal Server Erro\
    r501 Not Impleme\
    nted503 Service \
    UnavailableJan F\
    eb Mar Apr May J\
    un Jul Aug Sept \
    Oct Nov Dec 00:0\
    0:00 Mon, Tue, W\
    ed, Thu, Fri, Sa\
    t, Sun, GMTchunk\
    ed,text/html,ima\
    ge/png,image/jpg\
    ,image/gif,appli\
    cation/xml,appli\
    cation/xhtml+xml\
    ,text/plain,text\
    /javascript,publ\
    icprivatemax-age\
    =gzip,deflate,sd\
    chcharset=utf-8c\
    harset=iso-8859-\
    1,utf-,*,enq=0.";

/// Adler-32 of [`DICTIONARY`], which a zlib stream names in its header.
pub const DICTIONARY_ID: u32 = 0xe3c6_a7c2;
