//! RSA beyond the Wycheproof files (which cover 2048, 3072 and 4096 bits): moduli whose bit
//! count is not a multiple of 8, where PSS's encoded message is shorter than the modulus or
//! keeps unused top bits; salt lengths other than the hash's; and every refusal of a key.

use super::*;

const MESSAGE: &[u8] = b"eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJ0b2xsZ2F0ZSJ9";
const E: [u8; 3] = [1, 0, 1];

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// (bits, n, PS256 salt 32, RS256, PS256 salt 0, PS256 salt 64) over MESSAGE, e = 65537;
/// made with Python's `cryptography` 48 (OpenSSL 3).
const ODD_SIZES: [(usize, &str, &str, &str, &str, &str); 4] = [
    (
        2049,
        "01750d28b4597d497b841795c212ffb17b8a2bd1eff4827c0c3c4742f83aace1f1c54f91c959465f56d22af857be9017fb54749f2a7c04e9dafdab25910207b601934304d273bbc8713b3c7a075f0f07804720361402247277cde176b755df639e884aab98d2713fb9f8d59846b010b634594d4de9e535748bc75f8b05927a3b8bf0084ba9fd50af3b385016adaa23dcf05fc2dd2d76fa5dc4b4607366052c6248fc3f84c3272312358a918aea692d48ab57d49c807f005f39367912ca5c8e6ab3639c56ace332c0331b1265a13f14e1544b76a8be86a7e01c062e6d57e6077dbe8415b96e4194fef8abcf6a32e38588d8ca89203308fb8d7bcd2f61cac8fe2721",
        "00573887e0b792eadc43d10c73d346b2b6c2755c11ac049d4d5d0cf9e3bc5ae7e46c59c1606fe0df9aed3b5824650aacdd3f16c4a4a9a94dfa4d451946f6f12f3862858e04fa260fd90bed23d7e1f37c41cdac75735e0898d224be5e949d9d8ae5bba2a9f89724c41c71eb542ed488d820b577f07631d43358dba82aff63c31180e7a335fbed982d5e0a79d72b242a0d5b77789dfdf17669f2bdba1e1666c06558214ca91ef595469af81a836826bb5298980c694391c03c422b51abe53eff00b66bace16609c362777cc767ff9bf953c1c035d982ef7ec74cf7431ac92aa5274e45f9a9b033795fd833d6104f47178460fc780e8737b5dbbfdf3b22d1848a3fbe",
        "009569f8aa1dd2937d91b65ef89e58be90423280e3733aa9ef190564140d82e513dff57bc6f01749f4edb36c675dd9e5d4d9889dd8b62aa23c6c59ad021a8661954fb5f823cce2659c209c8b4d41275f9a62fd6d6a0a34a567d44d221e8d2b2fb6e1f1a5fd47dab1444efb4df6bc78131ae11e53cd9cc85db6730fa8084743e838b1beac549dbb9824585a4d30e44c6e1a8cffc5ec5613f1abda2b463916a32cfb685ef2d6163af375fa469af30035f597239f4a8b5284231cb7e32264463ea6f8125e0b179e5f3f9d90cc337717ff2529324a5932a16bfae05298d03348b4d3ff02c3d07aa0001b9bea1552e1e02935b71d57afc6b022fb2c713849669433487e",
        "014180ffe56209b6804e623dd6df2416d54c3a95a46311660f61500b5db947eb6bf75572928cb33f425e3912f7fbd0c06a29645b9d66b1e068460131cb56ac6b58a3313003f13005fe92c75e98406f4610948923ae62b7b988a38177439c99fbb0099f864238250943065c047451b98e21002c8fc70c3b778efb99573a45baa6b84829797678d4f089d47dfd6b361bf2ef22a414054168b50395af26aec2a6dd1152b41ce702987d278dc051c29eb396467880de3b1c3e350ce7006a4a7fed1647398327bbaf50a8297cb1eca07a6c4ec26ff6ebc6b7c8fb8493f98051e84369129f36afeae74a16650f8884b23406b08df361200b29474c1a9e989162e95af9b8",
        "00c17aadab0cef0c7aecb08b7dbbadd7e5a9df34d81e50069b46e773a6ca92babd284d8d0b9d79dbd4918f6e1096749e7bc08461f038d83871d328adee9d299631b4d50d7cbb7d126ccf15c07dd16e4d4eaedd78a6ba98ab312b4a6103b1c2363ffa6545550b665c3f9e23a6b0fbebbc2528400f71d735cdf9a7b1176cea9990f3f7387fe3af3b596e5f737f700e258bf6740aee4ca47713856ecb84f36e0ac228924946eaad2ba6d098ef95e1b0825725019d739627dc7a8eb65e2d9e8b52627ad2ab278d2fd01f651b635984395de977dfac759200665aaa1a04160b35f9beb978118fdfc7e3c9c04945a865ef5e2001035b3ff253bb84e1d924414b8987b435",
    ),
    (
        2050,
        "03e9b52ea4049b964f70f2e7bf51e9ee8a0cfc29efd6c0168c1b6564da55aaa6f8d4ce5ebe19be8a0a63d16c1d5587cb1683b5fffc9f081cd2f2912d5d1dfe66e9740cec94c78628c259ce47b7bc539900142d90fa41c6c51052ef22f717a5123ac94883f16ac0b3e8a5351dbca34bb2862ccadafcea546ecc4774a85871d309554232fef786098a3831ab86f05552c16b573ae6e7986f962a36874f8fc751257db74f3f7e563da1c5dc790106834ae193206ba0e1fabd0f62b39824989a863f66633ebd4e8b0c3ccf136de3abd787e3febb15be871ed0a54dc55d59a3b486e42fe82d97f1db060a4789d9b7737ec3be2b2e0fe7120b6bca8e2064f21b6535e017",
        "0072277513fafe4e3979ccb63566a54ddb92dbb3c915ca08ce1025cd01032379e5cc341d902eb54d74337cf35c9e0bd1f62ff40f54c63c1d0bbbbb944f79ae12c565cddc5b5ba2c76a54955a01aad1abd53aab4a0cab6095534fd86f583d2e5d1151e69bb5d8049e57d2f2b6920e431ec2da9dc091f8bfb852a0f32a7eb107e1afc0d8a85a45d32f51d793527280b740e5dfbc2ffa9ce27739d933cd633d3a1008f0bb601fee2c1d7ce0baf7a7bd5e2ac53db672fa20ca80917b098f772de480c57cb426fca62a718753f4db2dab888c5b85b3e88f4581f3f0c3117cb4752e228fbbdeca09400ef934efa10b6627c4dcecb30aee177a87cd116df6c2069304dd86",
        "03dc07424f85c5cee297ecc493d61550bb5a2be0ac4169b036a2d962dac5dccea3eacb40e5dd5e867b7e6a53403113446ed12e88ca4c3629a166d29de7a173063fab445df10d532d65455f99b37a81ff449f6b1554caa28333e47da85689ef20ce44c8f1e297192b37e1186546df400ff069bb13ae9c517ee32d0de34302110624e5f4ea96eab5569779713fef35da0c87ccd54090a2e5a883b0b6b6dfb4ccfd4136b35305403d6c5b757b1d407511e089c4acefd9eaa67206905e19c5174c1aad6a4482d8720c30459ec58c0adb6e5f1ccc699f3a0d0beec7ef41171dbc651799cf03c2bf37644d952623f48edf9100c02b339555c7c36a2e1f5f98c3039d3c87",
        "0222583cf2e81aae40fd69895618015abb98dba155b0463bf2926baf2ea81b44f438c72702d84681a674b28930eb694d3f5c09be421981ac4359ee01cc4cf3ef1e0e6774f95ae541c4409c9411f71bb39ff2eae917507ba88c55fa9c05c4cdf731b5c76c7c153b92160c5ba284e49e631b1c9c00a8f33bcceb17d7c0329376d5530cff0ad5878cd41a7b38ff68f545a366a8fcb735760cb5cb2d47b2e5d49de6793d009e693e311897d5c239e556981860ffd3ec32e634cf642b82eace88bba9e9bd5bedc5bab0bee35420c60033982c512423cf931dc6a2c46ffdf5a3d9cd00b878d12bffd8abf2ca5e5cf1dc0d21a6d9bfe2c2c9013c51f721d32cd2f856483a",
        "03534146dbd9b0eb6ac299af8b0f70c5865d9433d6b7f75609a05bce1b7e3e223dc0433fda5f577cd822c82b312fe11ee97fb5725a8d022059e92a13d1ec7b110a03bacef9d2afaca811780eb435ce178cb86cf25389a4729799abc74a1da80cd197d39ad8f4b1ee19d721c1eb9068f88f97b1743ddac306532c46fae8a89572e87fb64870af91a7e9781a2ffe7c6c71340bf787b7f3ca794c3a4a6f3b895045852ff05d4b21bb7ed5c99f286b83ab41a3c22bb372853815ef8ba1fcba5cdd090feb4a17602312a86a168da731eb82de943e75df841ba74ba4a3d5e8638210e12dfb6ec48776f08c2995ee6992c2690b38244b57c5853a3a789c88c52f5d4195db",
    ),
    (
        2055,
        "69d74a77334223c69af10771fec0f2f8cd2a0d9cb1cf6a15259991514509dc049b04ae4055413a99afbac6173b63ad5e1c4f2921e99bd1f0781563e33006bffe6b3aa117b29932cbb9250adf73da1909429f3b8c5fdfdf1775a893f3a3b7c7400189c4333f8c9476374f1e5ad571f6e4e9e610a2906dfcd2a3ab63191adaa00d10a5c862a74f743d1734dc335cb1cfd9fd2ffdac4f0e2de3382598f5a12e8328fb06d10635dbc95ac63b5b9a5e8cfdc135e67f921066a2c5b3500917376f77c6e36e512629d0eeb907331b9c6078bb48557585f82a3030f9e0261e4b9067376f6a1293e5d179b4e4ee3b6601f4a3048d297ed6d07c51d438312af2b331ba415e4f",
        "3105f6d31ac310e3e5a86438759c74b321183b30113be00dc8d559ee5dc0b0760b4432db02e106232041c96b06f15bd6c2e73319b7781c060a7b1cf0c0c9ab315f548339f08d255fe9889ee5c51050201c541e84564406d33e7cc05362402fd715aa85637816302af7dc96dd14b6c67a84d22fed1a7ad85621a54a35137825eac9e9cb90169c92e21546f0d3f8b77635fe6df5c199976223e1ea037438eb0b34b6e4cc2a24daa6c078d9e0d3e7967d2b5a20e82d1c59af16eac4a1fae239fa29b5457225bb7ed5fd1e3f35527bfb76121cdadd50d0845e6152a4330ac22c4f08f3ffae06b3e4e348a9f981acfa57df7f3f1b721d5b2e2713d478f72b155922da02",
        "2c910b04d6df3eb60e4a0b6af04623e1e0e8f2db236881da75e3b182aa8b50ca6b6127db024af7578017d919ad933b0ffacb8a9bee9cd77ea5bbf6300012c7b5b7bf477b0b48639f3c6e36aa80bf4a11eae4a2b8c04fa9c082e0f3a8e5d355e9c6ab59ca6d488abc0e5de9d27f665e9cbd19dd4fd7057fffdba3116a7fcca8316e52c5c6235514e46e6a0f8d5e904388a2ca98b383b39b372b0f07879de3495cdfad74adcf8e2142bd629e04fdf832162855104235565218b65987cccc97484056223dee9e373803922968aff76d4ba49fa2299454c83f2b996e4cb8eb529581c1183e032e22040a3e84254cf692694100ceb58869dd4d7a98b3604786b9b3748d",
        "5942d913875801b55b2d831f4b2e1d5b20f54f670a3aeafdf9ff4a1a76d2ce7262586cfb8ceb0853762370b691b1715bc6dbeedaea75ab613509887f8445e85d020fab8a214a9c7dbcffb0ca6c7eda89afb859f294d4f09fb1a0b241da3fb029f97b96cdb53f6ade83bf21466776b61d86917d16fa35c01c65c1034e4869a66b6457c14bdc5d5adf95355d5c3e644c71e4284a8e34b6ad1a623214310ae1c2437cab9e1cf07db6b61ba3ad116b5942dc709f26b6905cfff9ff3c215f893446b3b9cd97a1168d29a0854f5a970aa98510d961f160ebadc16125a8d2b698b54eb5f5256ee1e83fbb01536046642845e1ec584614cfabfa409365aef52d56832ca8f1",
        "5635900a77a3eb555adbab8e691b627183812d147941e534ac0d8a9a5f511a6ff1a9168715af098fc36aacee281495a99c221f861bb6f3b7a7f9f0c315c90065e08630d9b5e3accbb564427bcb5d9002115cdd19ef9bb3ba242290db99031a55903ee2b77d2dfb369f87d2ccc7729b25a9f71b070316e850873aa7db72e322d504dcdc276c3311a3c7d3f7c238c50a93105ffb55d9cc771aff1d24bfdc118ceb20da8546708d869e873dd503febb98c21fb7d3e374fcc0b0d26d7f77edd5933f21587c978bf166efab7a1f00d1b89e5978379349656e3ea22ff3dc7876e73fd1d524a2489ede9fccb3bc9425a99d87f59b45c672a6db3c2e41bc54399e6280c47d",
    ),
    (
        3071,
        "66ed4df7ee8f982b254a6a20cd5069e79a26b19f560c09db3f2125c8fc97581a57e67442d2b245c375990702d7f7cdda893df1d34b73e7425a0d8d68b85a8d9a97a89a59baac697aaa58243bcfdb3a94a4bd6092f7d211ee9bbd27b16a5a1ff440b15f291d579abbc5b1478e0e66ae7353ed39678eb718237f1e1b69d7bf50f8597fd894828089ad2e664b5a6f5ae0bee255275063e9d01b9c900442697cfd2eecd3e01c118d820f4a1b498f9bcee714460069544a785d2e7383e537739ab9f09e816b8625d3a371a42bc1e90063dce13cd7c09a8b0368c59647ce95f1ee05a82dd65687304f3eb8f7a5b3538e1e6aa2197ebe4d44193d6134209b1beb8c8220158bb98fa015a9ad758a2d1fcbe926bc48f145aaf3f89f711a048a5e20281b2a8ba8526154fd5f5c33d92f3a3a6928180f4de8c454dc8b67c35b288b0df077509761dc758225b50a272d873be31ed527f971a592da8eaadcf4363314c1def9fb95c5fd07d01140773a84cd8744a71381840408da5434466f0fc14dbe796df8a7",
        "423665dcd0f863d78799f6746b3540d6f33564026192fb66474e0666d2f54937fb6de70e882c7bffbfb7f98d447ff0816a5da2b917f8247a7f72b0fde555fd52fe0b7f03e7528f7f13eb9ea353536be6b56ab34503eb1cd222b548380e4e778340c492c6767d67a4245881f639e15307e0243eaf1a3a5bcb994ff0406a88ec033ef8ad9d78ef586dcb820a7dbbe912b29e195fe4ca97e1ec4d6fbab8e50fe5f6a191d0d090f0a5fa175b5e9253b2433415d401f8ce1dcc318af9a067a44b558c4c2e9871169d6fc42cf36a1c17759a9f32a8e38f0f030926b591a56b9e9e633d3e27138f7978424fcfe98c48cabd535ba16100bd36ef4c4a919c6be5a75aa26bad85499b21f3fcf0e85d706a8bffd35b6a1a4b20cc4f09ef88f44a3bf4671930b7e93df310545216ca546a8acd926d84c80c83d285f8831c6174584b31b6e6ccd4202c4d69983f83bd5e83c03f0ea43d5e2775f411f4477fb8ff93b96f6d73fc7b3622c15cc2e6bc023d28ca1765991f35506d7a672719fee50e8f20f928d55f",
        "5df0077604e0b27fec83716fdf6135f33638fcebd57d13119b8877eafdcff8f819e2bd6deb64aefa32beac0b8e271574910841138ec4ba06d574e7e2c9ac236c0be769ceda363480f292a2240f4bb0f433ac3cc9ec4d9d0ef9a4d25a6761a60e8180c385b99796792a7acfa0f57b585043298f302eb2102eea22a466a7e5eb57d40eec8cbb6746797cbc82821d4beab104fc2797dc2b857e92ee22b3f6435f9e3d4d74dfff322d3203b66dfdf474af1119b0fdef06d33d27c8d28d017b6cedb5918a11be1f25344d69c022153de2b7150d924b94f16b4c9dee576ab1f73fb7a4fa2da717951dfa67cda722769fa1abd6f833d894948992cdc7076e727b44c89ba8e75d59a00983b4b3c3fd1380b9dbd2f3cdbe29b54c60da41be3114256d3e30f688182a210107f0d9b626d8f5af50298bacd981fa1b581cd31845e87e7e4c4ce62c5a8051ac1f341d3f9089008c2dc09da15d1054c75ad40fe2bb191c309c3555c961a49f69b8ddcc68e935ae2ef1ac7d9adb2aa85feb3a1fc4282a3da66ea4",
        "27d6968a4a5fafd355d3f292c3882995ef3189522d6e3049298a23b279e4de3b0c389099beadbf6a3e76d0311c0c25561ea74c88673bf953233a2a43aa7a76e6fa0e42ec06e19ef666f1a6415b45016352df9bfeec24ef9639d4eb8cc07ee0cedcd57011f2a63706f63ea114e9e327644c0ba82c7583e0b09cbb223b238e67e3ca63ff678893dd021fa189be71386f6c94f8836248f3b3b5fd5161f1f8588c4fc40b9e401a473a33672e9b48be4c2e8413a4fd9387cddb9dcc52cea938f403201f96b827a07e0ce32502a0e2c1b471b1fa7e2f4ff514fe205c7d71bf26703f5558cc81d7afdfbab5663c702e8b5b51349d555b57b3f0ad5b7bfcd31658272c8ffa3530f58478109dfd0bb66dc69239b265f9c6dcf50019d14dbbc2464dadc6040638417aff7c2ff998086da1b88e8baae14258a944b074ea4d77ef717382ed456b6dfc7f836391051b2a6e523cf813aebbad0927fec419cd83586a251e4d4948be9ae1cc5719d66c21d53c9583bc2b28d731b3ccbd7f5e627d9c5fd7655bd8cb",
        "5aeff92b210d249fadac5a964fdb479bdf2989e3cd85926e436aac39aabcd7c729cbfac1e264112ec7788fc88944695954387c457ec094e3de5d2776d6e3cdbbf8725f1c3b1f1563d01dca5b2b37c5a9e1650fc87b243b2f85806cda4cb270611b1678d3cd2a955c4b87927b3e53c5a849600b717ea68139af6b7979a6a78b747953b77408ee4fd8a5a9839c06dad14c57cd922a4d3c921c56d295e1d0a4a46731107957a13f01e934adca0cae6d60b7b040d7c8045338146b75f0c5d07de3a92949ee8230e1d01f4e010c72830057ecbc8d6c93094d55e93b56405f7496d387ec42215a20fc448c3edd1c8523873eb4b652db602fc75c9c66c83e6f6cfadfa82d370c45988b09bb2b2d44e388bc8d9a10f3aa24e1bbf42a7df315c4a22f9d257290f17dc95039434afb7c839f7b402f231e299ec566eaa1f835aa3e8de043d4f9dd39e698c82ac7c98f71402075d3d339a9e33e3fb6f3555d333af3f61e85906ba50e9e6531c1402cf76d63ca8228fb1ac80ef71e1733801452514f74a9f538",
    ),
];

#[test]
fn odd_modulus_sizes_verify_and_refuse_as_they_should() {
    for (bits, n, pss, pkcs1, salt0, salt64) in ODD_SIZES {
        let key = RsaPublicKey::new(&hex(n), &E, 2048, 8192).unwrap();
        assert_eq!(key.bits(), bits);
        let verify = |padding, message: &[u8], signature: &[u8]| {
            key.verify(Hash::Sha256, padding, message, signature)
        };
        assert!(verify(Padding::Pss, MESSAGE, &hex(pss)), "{bits} PSS");
        assert!(
            verify(Padding::Pkcs1v15, MESSAGE, &hex(pkcs1)),
            "{bits} PKCS#1"
        );
        // JWS fixes the salt at the hash's length: others are refused, as before.
        assert!(!verify(Padding::Pss, MESSAGE, &hex(salt0)), "{bits} salt 0");
        assert!(
            !verify(Padding::Pss, MESSAGE, &hex(salt64)),
            "{bits} salt 64"
        );
        // Another message, another padding, another hash, a changed or cut signature.
        assert!(!verify(Padding::Pss, b"other", &hex(pss)), "{bits}");
        assert!(!verify(Padding::Pkcs1v15, MESSAGE, &hex(pss)), "{bits}");
        assert!(!verify(Padding::Pss, MESSAGE, &hex(pkcs1)), "{bits}");
        assert!(!key.verify(Hash::Sha384, Padding::Pss, MESSAGE, &hex(pss)));
        assert!(!key.verify(Hash::Sha512, Padding::Pkcs1v15, MESSAGE, &hex(pkcs1)));
        let mut changed = hex(pss);
        *changed.last_mut().unwrap() ^= 1;
        assert!(!verify(Padding::Pss, MESSAGE, &changed), "{bits}");
        let signature = hex(pkcs1);
        assert!(!verify(Padding::Pkcs1v15, MESSAGE, &signature[1..]));
        let longer = [&[0][..], &signature].concat();
        assert!(!verify(Padding::Pkcs1v15, MESSAGE, &longer));
        // s ≥ n: n itself, of the right length.
        assert!(!verify(Padding::Pkcs1v15, MESSAGE, &hex(n)));
        assert!(!verify(Padding::Pss, MESSAGE, &hex(n)));
    }
}

#[test]
fn leading_zero_bytes_of_n_and_e_change_nothing() {
    let (bits, n, pss, ..) = ODD_SIZES[1];
    let n = [&[0, 0][..], &hex(n)].concat();
    let key = RsaPublicKey::new(&n, &[0, 1, 0, 1], 2048, 8192).unwrap();
    assert_eq!(key.bits(), bits);
    assert!(key.verify(Hash::Sha256, Padding::Pss, MESSAGE, &hex(pss)));
}

/// The refusals and their order are those of `rsa` 0.10's `new_with_size_limits`.
#[test]
fn unusable_keys_are_refused_with_the_same_words_as_before() {
    let n = hex(ODD_SIZES[0].1);
    let new = |n: &[u8], e: &[u8]| RsaPublicKey::new(n, e, 2048, 8192).err();
    let mut even = n.clone();
    *even.last_mut().unwrap() &= 0xfe;
    let big = [&[0xff][..], &[0; 1024]].concat();
    let big_odd = [&big[..1024], &[1]].concat();
    for (n, e, error) in [
        (&n[1..], &E[..], RsaKeyError::ModulusTooSmall),
        (&[][..], &E[..], RsaKeyError::ModulusTooSmall),
        (&[0, 0][..], &E[..], RsaKeyError::ModulusTooSmall),
        (&big[..], &E[..], RsaKeyError::ModulusTooLarge),
        (&big_odd[..], &E[..], RsaKeyError::ModulusTooLarge),
        (&even[..], &E[..], RsaKeyError::InvalidModulus),
        (&n[..], &n[..], RsaKeyError::InvalidModulus),
        (&n[..], &[0xff; 300][..], RsaKeyError::InvalidModulus),
        (&n[..], &[0, 0, 1, 0, 0][..], RsaKeyError::InvalidExponent),
        (&n[..], &[0][..], RsaKeyError::InvalidExponent),
        (&n[..], &[][..], RsaKeyError::InvalidExponent),
        (&n[..], &[1][..], RsaKeyError::PublicExponentTooSmall),
        (
            &n[..],
            &[2, 0, 0, 0, 1][..],
            RsaKeyError::PublicExponentTooLarge,
        ),
        (&n[..], &[1; 9][..], RsaKeyError::PublicExponentTooLarge),
    ] {
        assert_eq!(new(n, e), Some(error), "{} / {e:?}", n.len());
    }
    // The largest exponent still taken, and the smallest: 2^33 - 1 and 3.
    assert!(new(&n, &[1, 0xff, 0xff, 0xff, 0xff]).is_none());
    assert!(new(&n, &[3]).is_none());
    let texts: Vec<String> = [
        RsaKeyError::ModulusTooSmall,
        RsaKeyError::ModulusTooLarge,
        RsaKeyError::InvalidModulus,
        RsaKeyError::InvalidExponent,
        RsaKeyError::PublicExponentTooSmall,
        RsaKeyError::PublicExponentTooLarge,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        texts,
        [
            "modulus too small",
            "modulus too large",
            "invalid modulus",
            "invalid exponent",
            "public exponent too small",
            "public exponent too large"
        ]
    );
}

#[test]
fn the_encoded_block_is_the_one_rfc_8017_gives() {
    let em = pkcs1v15_encoding(Sha256::PREFIX, &[0xaa; 32], 256).unwrap();
    assert_eq!(em.len(), 256);
    assert_eq!(&em[..3], &[0, 1, 0xff]);
    assert_eq!(em[256 - 32 - 19 - 1], 0);
    assert!(em[2..256 - 32 - 19 - 1].iter().all(|&b| b == 0xff));
    // Fewer than eight bytes of padding: no encoding.
    assert!(pkcs1v15_encoding(Sha256::PREFIX, &[0; 32], 19 + 32 + 10).is_none());
    assert!(pkcs1v15_encoding(Sha256::PREFIX, &[0; 32], 19 + 32 + 11).is_some());
}
