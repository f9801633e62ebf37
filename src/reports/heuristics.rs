//! Which columns look personal: by name (in several languages) and by type.
//!
//! Pure Rust (unit tested with plain `#[test]`s), shared by `privacy.lint()`
//! and `privacy.require_tags`. A name is split into words (`_`, `-`, digits,
//! spaces and camelCase boundaries), lower-cased and folded to ASCII for the
//! common accented letters; a column looks personal when one of its words,
//! or two adjacent words joined (`e_mail`, `first_name`, `date_of_birth`),
//! is in the list below, or when its type holds network addresses (`inet`,
//! `cidr`, `macaddr`). Generic words (`name`, `number`, `id`) count only
//! with a personal qualifier (`first_name`, `user_name`, `phone_number`):
//! `product_name` is not flagged, `customer_name` is.

/// What kind of personal data a name suggests, with the `CATEGORY` the lint
/// proposes for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Phone,
    Network,
    Address,
    Name,
    Birth,
    NationalId,
    Financial,
    Sensitive,
    Location,
}

impl Kind {
    /// The category proposed in the fix.
    pub fn category(self) -> &'static str {
        match self {
            Kind::Email | Kind::Phone | Kind::Address => "contact",
            Kind::Name | Kind::Birth => "identity",
            Kind::NationalId => "identifier",
            Kind::Network => "online",
            Kind::Financial => "financial",
            Kind::Sensitive => "special",
            Kind::Location => "location",
        }
    }

    /// What the column seems to hold, for the lint's message.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Email => "an e-mail address",
            Kind::Phone => "a phone number",
            Kind::Network => "a network address",
            Kind::Address => "a postal address",
            Kind::Name => "a person's name",
            Kind::Birth => "a date of birth",
            Kind::NationalId => "a national identifier",
            Kind::Financial => "a bank or card number",
            Kind::Sensitive => "special-category data (Art. 9)",
            Kind::Location => "a location",
        }
    }
}

/// Words (after splitting and folding) that mark a column as personal.
const WORDS: &[(&str, Kind)] = &[
    // e-mail: en, de, fr, es, it, nl, pt
    ("email", Kind::Email),
    ("emails", Kind::Email),
    ("mail", Kind::Email),
    ("emailaddress", Kind::Email),
    ("courriel", Kind::Email),
    ("correo", Kind::Email),
    ("pec", Kind::Email),
    // phone
    ("phone", Kind::Phone),
    ("phonenumber", Kind::Phone),
    ("tel", Kind::Phone),
    ("telephone", Kind::Phone),
    ("telefon", Kind::Phone),
    ("telefonnummer", Kind::Phone),
    ("telefono", Kind::Phone),
    ("telefoon", Kind::Phone),
    ("mobile", Kind::Phone),
    ("mobil", Kind::Phone),
    ("handy", Kind::Phone),
    ("cellphone", Kind::Phone),
    ("cell", Kind::Phone),
    ("cellulare", Kind::Phone),
    ("movil", Kind::Phone),
    ("fax", Kind::Phone),
    ("msisdn", Kind::Phone),
    // network
    ("ip", Kind::Network),
    ("ipaddr", Kind::Network),
    ("ipaddress", Kind::Network),
    ("ipv4", Kind::Network),
    ("ipv6", Kind::Network),
    ("mac", Kind::Network),
    ("macaddr", Kind::Network),
    ("useragent", Kind::Network),
    ("cookie", Kind::Network),
    ("deviceid", Kind::Network),
    // postal address
    ("address", Kind::Address),
    ("addr", Kind::Address),
    ("street", Kind::Address),
    ("streetaddress", Kind::Address),
    ("strasse", Kind::Address),
    ("anschrift", Kind::Address),
    ("adresse", Kind::Address),
    ("direccion", Kind::Address),
    ("indirizzo", Kind::Address),
    ("adres", Kind::Address),
    ("endereco", Kind::Address),
    ("rue", Kind::Address),
    ("calle", Kind::Address),
    ("postcode", Kind::Address),
    ("postalcode", Kind::Address),
    ("zip", Kind::Address),
    ("zipcode", Kind::Address),
    ("plz", Kind::Address),
    ("postleitzahl", Kind::Address),
    // names
    ("firstname", Kind::Name),
    ("lastname", Kind::Name),
    ("fullname", Kind::Name),
    ("givenname", Kind::Name),
    ("familyname", Kind::Name),
    ("middlename", Kind::Name),
    ("maidenname", Kind::Name),
    ("surname", Kind::Name),
    ("username", Kind::Name),
    ("displayname", Kind::Name),
    ("nickname", Kind::Name),
    ("forename", Kind::Name),
    ("vorname", Kind::Name),
    ("nachname", Kind::Name),
    ("familienname", Kind::Name),
    ("prenom", Kind::Name),
    ("nom", Kind::Name),
    ("nombre", Kind::Name),
    ("apellido", Kind::Name),
    ("apellidos", Kind::Name),
    ("cognome", Kind::Name),
    ("nome", Kind::Name),
    ("voornaam", Kind::Name),
    ("achternaam", Kind::Name),
    ("sobrenome", Kind::Name),
    // birth
    ("birth", Kind::Birth),
    ("birthday", Kind::Birth),
    ("birthdate", Kind::Birth),
    ("dob", Kind::Birth),
    ("dateofbirth", Kind::Birth),
    ("geburtsdatum", Kind::Birth),
    ("geburtstag", Kind::Birth),
    ("naissance", Kind::Birth),
    ("nacimiento", Kind::Birth),
    ("nascita", Kind::Birth),
    ("geboortedatum", Kind::Birth),
    ("nascimento", Kind::Birth),
    // national identifiers
    ("ssn", Kind::NationalId),
    ("socialsecurity", Kind::NationalId),
    ("nationalid", Kind::NationalId),
    ("nino", Kind::NationalId),
    ("passport", Kind::NationalId),
    ("passportnumber", Kind::NationalId),
    ("taxid", Kind::NationalId),
    ("tin", Kind::NationalId),
    ("steuerid", Kind::NationalId),
    ("steuernummer", Kind::NationalId),
    ("sozialversicherungsnummer", Kind::NationalId),
    ("personalausweis", Kind::NationalId),
    ("nir", Kind::NationalId),
    ("insee", Kind::NationalId),
    ("dni", Kind::NationalId),
    ("nie", Kind::NationalId),
    ("nif", Kind::NationalId),
    ("codicefiscale", Kind::NationalId),
    ("bsn", Kind::NationalId),
    ("cpf", Kind::NationalId),
    ("driverslicense", Kind::NationalId),
    ("driverlicense", Kind::NationalId),
    // financial
    ("iban", Kind::Financial),
    ("creditcard", Kind::Financial),
    ("cardnumber", Kind::Financial),
    ("ccnumber", Kind::Financial),
    ("accountnumber", Kind::Financial),
    ("kontonummer", Kind::Financial),
    ("salary", Kind::Financial),
    ("gehalt", Kind::Financial),
    ("salaire", Kind::Financial),
    // special categories (Art. 9) and close to it
    ("gender", Kind::Sensitive),
    ("sex", Kind::Sensitive),
    ("geschlecht", Kind::Sensitive),
    ("sexe", Kind::Sensitive),
    ("religion", Kind::Sensitive),
    ("ethnicity", Kind::Sensitive),
    ("race", Kind::Sensitive),
    ("health", Kind::Sensitive),
    ("diagnosis", Kind::Sensitive),
    ("disability", Kind::Sensitive),
    ("biometric", Kind::Sensitive),
    ("fingerprint", Kind::Sensitive),
    // location
    ("latitude", Kind::Location),
    ("longitude", Kind::Location),
    ("geolocation", Kind::Location),
    ("gps", Kind::Location),
];

/// Generic words that count only right after a personal qualifier.
const GENERIC: &[(&str, Kind)] = &[
    ("name", Kind::Name),
    ("number", Kind::Phone),
    ("no", Kind::Phone),
];

/// Qualifiers that make a generic word personal (`customer_name`).
const QUALIFIERS: &[&str] = &[
    "first", "last", "full", "given", "family", "middle", "maiden", "user", "display", "nick",
    "customer", "client", "contact", "person", "owner", "member", "patient", "employee", "sur",
    "real", "legal", "phone", "mobile", "cell", "fax", "tel", "passport", "account", "card",
];

/// Split a column name into lower-case ASCII words.
pub fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        let folded = fold(c);
        if folded.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase();
        cur.push_str(&folded);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One character folded to lower-case ASCII letters ("" for a separator:
/// anything not a letter, digits included; the digits of `ipv4`/`ipv6` are
/// kept by the word list through the joined forms below).
fn fold(c: char) -> String {
    let lower: String = c.to_lowercase().collect();
    let mapped = match lower.as_str() {
        "à" | "á" | "â" | "ã" | "ä" | "å" => "a",
        "ç" => "c",
        "è" | "é" | "ê" | "ë" => "e",
        "ì" | "í" | "î" | "ï" => "i",
        "ñ" => "n",
        "ò" | "ó" | "ô" | "õ" | "ö" => "o",
        "ù" | "ú" | "û" | "ü" => "u",
        "ß" => "ss",
        s if s.len() == 1 && s.as_bytes()[0].is_ascii_lowercase() => s,
        s if s.len() == 1 && s.as_bytes()[0].is_ascii_digit() => s,
        _ => "",
    };
    mapped.to_string()
}

fn lookup(word: &str) -> Option<Kind> {
    WORDS.iter().find(|(w, _)| *w == word).map(|(_, k)| *k)
}

/// What a column name suggests, if anything.
pub fn personal_name(name: &str) -> Option<Kind> {
    // digits end a word but stay in it ("ipv4", "address2"): try the word
    // with and without its trailing digits
    let ws: Vec<String> = words(name);
    let stripped: Vec<String> = ws
        .iter()
        .map(|w| w.trim_end_matches(|c: char| c.is_ascii_digit()).to_string())
        .collect();
    for (w, s) in ws.iter().zip(&stripped) {
        if let Some(k) = lookup(w).or_else(|| lookup(s)) {
            return Some(k);
        }
    }
    // two or three adjacent words joined: e_mail, first_name, date_of_birth
    for i in 0..stripped.len() {
        for n in 2..=4 {
            if i + n <= stripped.len() {
                let joined: String = stripped[i..i + n].concat();
                if let Some(k) = lookup(&joined) {
                    return Some(k);
                }
            }
        }
    }
    // a generic word: alone (the whole name is `name`) or qualified
    for (i, s) in stripped.iter().enumerate() {
        if let Some((_, k)) = GENERIC.iter().find(|(g, _)| g == s) {
            let alone = stripped.len() == 1 && s == "name";
            let qualified = i > 0 && QUALIFIERS.contains(&stripped[i - 1].as_str());
            if alone || qualified {
                return Some(*k);
            }
        }
    }
    None
}

/// Types that hold personal data whatever the column is called.
pub fn personal_type(type_name: &str) -> Option<Kind> {
    match type_name {
        "inet" | "cidr" | "macaddr" | "macaddr8" => Some(Kind::Network),
        _ => None,
    }
}

/// What a column suggests by its name, else by its type.
pub fn personal_column(name: &str, type_name: &str) -> Option<Kind> {
    personal_name(name).or_else(|| personal_type(type_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str) -> Option<Kind> {
        personal_name(name)
    }

    #[test]
    fn words_split_on_separators_and_case() {
        assert_eq!(words("customerEmail"), vec!["customer", "email"]);
        assert_eq!(words("IP_Address"), vec!["ip", "address"]);
        assert_eq!(words("date-of-birth"), vec!["date", "of", "birth"]);
        assert_eq!(words("Straße"), vec!["strasse"]);
        assert_eq!(words("prénom"), vec!["prenom"]);
        assert_eq!(words("ipv4"), vec!["ipv4"]);
    }

    #[test]
    fn personal_names_in_several_languages() {
        for (n, kind) in [
            ("email", Kind::Email),
            ("e_mail", Kind::Email),
            ("contact_email", Kind::Email),
            ("EmailAddress", Kind::Email),
            ("courriel", Kind::Email),
            ("correo_electronico", Kind::Email),
            ("phone", Kind::Phone),
            ("tel", Kind::Phone),
            ("telefonnummer", Kind::Phone),
            ("mobile_no", Kind::Phone),
            ("phone_number", Kind::Phone),
            ("ip", Kind::Network),
            ("client_ip", Kind::Network),
            ("ipv6", Kind::Network),
            ("address", Kind::Address),
            ("billing_address2", Kind::Address),
            ("Straße", Kind::Address),
            ("adresse", Kind::Address),
            ("indirizzo", Kind::Address),
            ("zip_code", Kind::Address),
            ("name", Kind::Name),
            ("first_name", Kind::Name),
            ("lastName", Kind::Name),
            ("customer_name", Kind::Name),
            ("vorname", Kind::Name),
            ("prénom", Kind::Name),
            ("apellido", Kind::Name),
            ("birth_date", Kind::Birth),
            ("date_of_birth", Kind::Birth),
            ("dob", Kind::Birth),
            ("geburtsdatum", Kind::Birth),
            ("date_de_naissance", Kind::Birth),
            ("ssn", Kind::NationalId),
            ("social_security_number", Kind::NationalId),
            ("codice_fiscale", Kind::NationalId),
            ("iban", Kind::Financial),
            ("credit_card", Kind::Financial),
            ("gender", Kind::Sensitive),
            ("latitude", Kind::Location),
        ] {
            assert_eq!(k(n), Some(kind), "{n}");
        }
    }

    #[test]
    fn ordinary_names_are_not_flagged() {
        for n in [
            "id",
            "product_name",
            "table_name",
            "file_name",
            "amount",
            "created_at",
            "status",
            "order_number",
            "plan",
            "description",
            "mailing_list_id_count",
            "ship_date",
            "total",
            "title",
            "domain",
        ] {
            // mailing_list… has the word "mailing", not "mail"
            assert_eq!(k(n), None, "{n}");
        }
    }

    #[test]
    fn network_types_are_personal_whatever_the_name() {
        assert_eq!(personal_column("origin", "inet"), Some(Kind::Network));
        assert_eq!(personal_column("hw", "macaddr"), Some(Kind::Network));
        assert_eq!(personal_column("origin", "text"), None);
        assert_eq!(personal_column("email", "text"), Some(Kind::Email));
    }

    #[test]
    fn categories_are_label_names() {
        for (_, kind) in WORDS {
            let c = kind.category();
            assert!(c.chars().all(|c| c.is_ascii_lowercase()), "{c}");
            assert!(!kind.describe().is_empty());
        }
    }
}
