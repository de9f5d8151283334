"""Word lists for :mod:`streams.synthetic`: one compact vocabulary of real English per topic.

Each topic has a label (used as item category and in sentences), about thirty topic words and
six adjectives. No word is shared between topics, so the topic of a text is in its words; the
templates below are shared by all topics, so structure alone says nothing about the topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DESCRIPTION_TEMPLATES", "PROFILE_TEMPLATES", "TITLE_TEMPLATES", "TOPICS", "Topic"]


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    label: str
    words: tuple[str, ...]
    adjectives: tuple[str, ...]


def _t(name: str, label: str, words: str, adjectives: str) -> Topic:
    return Topic(
        name,
        label,
        tuple(w.strip() for w in words.split(",")),
        tuple(a.strip() for a in adjectives.split(",")),
    )


TOPICS: Final[tuple[Topic, ...]] = (
    _t(
        "outdoors",
        "the outdoors",
        "hiking, tent, trail, summit, backpack, campfire, compass, canyon, ridge, trekking poles, "
        "sleeping bag, wilderness, waterfall, trail map, boots, lantern, ranger, glacier, meadow, "
        "basecamp, headlamp, kayak, forest, valley, switchback, altitude, national park, bivouac, "
        "trailhead, camping",
        "rugged, wild, scenic, alpine, backcountry, adventurous",
    ),
    _t(
        "cooking",
        "cooking",
        "recipe, skillet, braise, sourdough, spice, saucepan, roast, knife skills, broth, pasta, "
        "dumpling, marinade, oven, garlic, simmer, pantry, stew, herbs, whisk, chef, kitchen, "
        "flavor, casserole, risotto, grill, seasoning, caramel, ferment, noodles, baking",
        "savory, homemade, hearty, crispy, slow-cooked, delicious",
    ),
    _t(
        "jazz",
        "jazz",
        "saxophone, trumpet, improvisation, bebop, swing, quartet, double bass, piano trio, "
        "standards, blue note, big band, drummer, solo, ballad, groove, jazz club, vinyl, "
        "chord changes, syncopation, trombone, scat, rhythm section, jam session, fusion, horn, "
        "bandleader, melody, cool jazz, harmony, live album",
        "smoky, soulful, swinging, mellow, late-night, improvised",
    ),
    _t(
        "astronomy",
        "astronomy",
        "telescope, galaxy, nebula, planet, comet, orbit, constellation, star chart, eclipse, "
        "meteor, observatory, moon, supernova, asteroid, cosmos, light-year, orion, saturn, "
        "jupiter, eyepiece, night sky, black hole, stargazing, spacecraft, solar system, "
        "exoplanet, aurora, astronomer, lunar, satellite",
        "celestial, cosmic, starry, interstellar, deep-sky, stellar",
    ),
    _t(
        "gardening",
        "gardening",
        "seedling, compost, soil, pruning, trowel, perennial, greenhouse, tomato, mulch, bulbs, "
        "roses, watering can, raised bed, herb garden, fertilizer, weeds, harvest, orchard, "
        "shrub, potting, hedge, vegetable patch, flowerbed, seeds, hoe, sprout, lavender, "
        "irrigation, allotment, bloom",
        "blooming, leafy, organic, green, lush, seasonal",
    ),
    _t(
        "fitness",
        "fitness",
        "workout, dumbbell, squat, cardio, treadmill, kettlebell, stretching, push-ups, gym, "
        "protein, endurance, interval training, deadlift, yoga mat, sprint, core strength, "
        "barbell, reps, personal trainer, calories, plank, rowing machine, marathon, muscle, "
        "burpees, resistance band, warm-up, recovery, lunges, heart rate",
        "intense, strong, athletic, sweaty, high-intensity, energetic",
    ),
    _t(
        "finance",
        "personal finance",
        "budget, savings, stocks, bonds, portfolio, dividend, interest rate, mortgage, "
        "retirement, index fund, inflation, tax, credit score, investing, pension, "
        "compound interest, broker, equity, debt, cash flow, spreadsheet, bank, loan, "
        "stock market, asset allocation, expenses, wealth, annuity, fees, emergency fund",
        "frugal, prudent, long-term, diversified, financial, profitable",
    ),
    _t(
        "photography",
        "photography",
        "camera, lens, aperture, shutter speed, tripod, portrait, exposure, darkroom, film, "
        "zoom, viewfinder, landscape, flash, sensor, focal length, composition, lighting, "
        "studio, negative, print, bokeh, mirrorless, wide-angle, photographer, snapshot, "
        "raw files, histogram, white balance, golden hour, photo album",
        "sharp, vivid, candid, cinematic, monochrome, well-lit",
    ),
    _t(
        "programming",
        "programming",
        "python, compiler, algorithm, database, debugging, function, variable, repository, "
        "terminal, api, framework, source code, unit test, recursion, software, server, syntax, "
        "refactoring, git, javascript, loop, data structure, keyboard shortcuts, open source, "
        "deployment, linux, memory leak, class, script, query",
        "elegant, efficient, scalable, clean, functional, object-oriented",
    ),
    _t(
        "history",
        "history",
        "empire, castle, dynasty, archive, revolution, ancient rome, pharaoh, battle, treaty, "
        "monarchy, chronicle, knight, artifact, civilization, manuscript, kingdom, crusade, war, "
        "historian, pyramid, viking, renaissance, colony, parliament, emperor, ruins, relic, "
        "siege, century, middle ages",
        "ancient, medieval, forgotten, imperial, epic, historic",
    ),
    _t(
        "pets",
        "pets",
        "puppy, kitten, leash, dog food, litter box, aquarium, hamster, veterinarian, grooming, "
        "collar, chew toy, parrot, treats, obedience training, fetch, cat tree, goldfish, rabbit, "
        "kennel, paws, tail, fur, adoption, pet bed, walkies, whiskers, scratching post, "
        "dog park, bird cage, flea treatment",
        "playful, furry, cuddly, loyal, fluffy, friendly",
    ),
    _t(
        "travel",
        "travel",
        "passport, airport, suitcase, itinerary, hotel, beach, backpacking, flight, city break, "
        "museum, train journey, hostel, phrasebook, souvenir, road trip, cruise, island, luggage, "
        "boarding pass, tour guide, landmark, visa, jet lag, resort, postcard, sightseeing, "
        "local market, ferry, guidebook, border crossing",
        "exotic, coastal, faraway, sunny, cosmopolitan, budget-friendly",
    ),
    _t(
        "fashion",
        "fashion",
        "dress, sneakers, denim, jacket, runway, handbag, scarf, tailoring, silk, wardrobe, "
        "boutique, designer, accessories, heels, knitwear, vintage clothing, outfit, hat, "
        "blazer, stylist, fabric, trench coat, jewelry, sunglasses, linen, catwalk, couture, "
        "belt, streetwear, lookbook",
        "stylish, chic, trendy, tailored, glamorous, casual",
    ),
    _t(
        "gaming",
        "video games",
        "console, controller, multiplayer, quest, level, boss fight, joystick, arcade, speedrun, "
        "rpg, open world, headset, loot, esports, strategy game, pixel art, save point, respawn, "
        "dungeon, leaderboard, co-op, platformer, achievement, sandbox, mod, gamepad, shooter, "
        "puzzle game, skill tree, guild",
        "immersive, retro, competitive, addictive, pixelated, online",
    ),
    _t(
        "science",
        "science",
        "laboratory, experiment, molecule, hypothesis, microscope, chemistry, physics, biology, "
        "atom, dna, cell, evolution, chemical reaction, research paper, quantum, enzyme, "
        "genetics, petri dish, particle, periodic table, theory, neuron, virus, scientist, "
        "test tube, bacteria, fossil record, isotope, electron, genome",
        "scientific, experimental, curious, rigorous, molecular, empirical",
    ),
    _t(
        "cars",
        "cars",
        "engine, horsepower, sedan, gearbox, tires, convertible, road test, turbo, dashboard, "
        "mechanic, garage, electric car, brakes, motorsport, rally, spark plugs, chassis, "
        "exhaust, fuel economy, hatchback, pickup truck, suspension, oil change, steering wheel, "
        "race track, classic car, torque, windshield, carburetor, driving",
        "fast, powerful, sleek, turbocharged, vintage, roadworthy",
    ),
    _t(
        "literature",
        "literature",
        "novel, poetry, author, chapter, fiction, poem, sonnet, narrator, library, bookshelf, "
        "paperback, short story, book club, memoir, verse, novelist, prose, protagonist, "
        "plot twist, anthology, publisher, bestseller, essay, reading list, storyteller, "
        "epilogue, metaphor, classic novel, bookstore, literary fiction",
        "lyrical, gripping, poignant, literary, thought-provoking, haunting",
    ),
    _t(
        "parenting",
        "parenting",
        "toddler, stroller, diaper, nursery, bedtime story, baby, lullaby, crib, pacifier, "
        "playground, potty training, preschool, infant, babysitter, car seat, teething, "
        "playdate, sippy cup, onesie, high chair, kindergarten, newborn, tantrum, "
        "bottle feeding, rattle, building blocks, family, nap time, baby monitor, siblings",
        "gentle, nurturing, sleepy, tiny, soothing, family-friendly",
    ),
    _t(
        "diy",
        "home improvement",
        "drill, hammer, screwdriver, paint, wallpaper, shelving, plumbing, tiles, woodworking, "
        "sandpaper, workbench, renovation, toolbox, plywood, cabinet, grout, power saw, nails, "
        "measuring tape, ladder, insulation, carpentry, flooring, varnish, wrench, sawdust, "
        "fixtures, staircase, drywall, caulk",
        "handmade, sturdy, do-it-yourself, renovated, practical, handy",
    ),
    _t(
        "coffee",
        "coffee",
        "espresso, latte, barista, coffee beans, grinder, french press, cappuccino, arabica, "
        "pour-over, café, crema, mocha, cold brew, kettle, milk frother, decaf, roastery, "
        "filter paper, aeropress, macchiato, single origin, tasting notes, caffeine, mug, "
        "moka pot, flat white, coffee shop, brewing",
        "aromatic, bold, freshly brewed, velvety, smooth, rich",
    ),
)

#: {A}/{a}: an adjective of the item's main topic (capitalised or not); {N1}/{n1}, {n2}: words
#: drawn from the item's topic mixture.
TITLE_TEMPLATES: Final[tuple[str, ...]] = (
    "{A} {n1} and {n2}",
    "The {a} guide to {n1}",
    "{N1}: {a} {n2} for everyone",
    "{A} {n1} handbook",
    "Notes on {n1} and {n2}",
    "{N1} essentials",
    "Everyday {n1}, {a} {n2}",
    "A {a} year of {n1}",
)

#: {w1}..{w4}: words drawn from the topic mixture; {a}: adjective; {label}: main topic label.
DESCRIPTION_TEMPLATES: Final[tuple[str, ...]] = (
    "A {a} look at {w1}, {w2} and {w3}.",
    "Covers {w1} and {w2}, with practical notes on {w3}.",
    "Features {w1}, {w2} and a chapter on {w3}.",
    "From {w1} to {w2}: everything about {w3} and {w4}.",
)

#: {words}: a list such as "hiking, telescope and stargazing".
PROFILE_TEMPLATES: Final[tuple[str, ...]] = (
    "Enjoys {words}.",
    "Into {words}.",
    "Loves {words}.",
    "Interested in {words}.",
)
